#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and runs every proxd test suite:
#   1. installs missing Debian packages (scripts/install-deps.sh),
#   2. a warnings-as-errors build and all meson test suites,
#   3. an AddressSanitizer + UndefinedBehaviorSanitizer build and its suites
#      (any sanitizer report fails the run: meson sets halt_on_error/abort_on_error).
# Build directories live under _build/ in the source tree. Exit status 0 = all passed.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

setup() {
    local dir=$1
    shift
    if [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" "$@" >/dev/null
    else
        meson setup "$dir" "$@" >/dev/null
    fi
}

echo "== build (warnings are errors) =="
setup _build/ci -Dwerror=true --buildtype=debugoptimized
ninja -C _build/ci
echo "== tests =="
meson test -C _build/ci --print-errorlogs --num-processes 2

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build =="
setup _build/asan -Dwerror=true --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
ninja -C _build/asan
echo "== tests under ASan/UBSan =="
meson test -C _build/asan --print-errorlogs --num-processes 2 --timeout-multiplier 3 \
    --no-suite vm --no-suite bench

echo "== all test suites passed =="
