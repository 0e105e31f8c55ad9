#!/usr/bin/env bash
# The main job, runnable on a fresh Debian 12 machine without Bluetooth hardware:
# installs what is missing, builds proxd, then
#   1. (a few seconds) what a phone broadcasts and what a signed key list is, with the
#      offline prox-tool;
#   2. (about 45 s) a 30-minute bus ride, time-compressed: a bus beacon and ten passengers,
#      each a real proxd, in a simulated radio world (fake-bluez on a private D-Bus); what
#      each device recorded; then one passenger tests positive, reports with a one-time
#      code, the health authority publishes, everyone syncs, and the passengers who sat
#      close get alerts while the far ones don't (prox-sim bus-ride).
# Extra arguments go to prox-sim bus-ride (e.g. --passengers 20, --keep DIR, --verbose).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
if [ -f _build/demo/build.ninja ]; then
    meson setup --reconfigure _build/demo --buildtype=release >/dev/null
else
    meson setup _build/demo --buildtype=release >/dev/null
fi
ninja -C _build/demo >/dev/null
tool=_build/demo/tools/prox-tool
data=tests/data/gaen

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Part 1a. A phone's daily key (TEK) and the IDs it broadcasts every 10 minutes"
echo "   (Google's published test key; columns: interval number, RPI, encrypted metadata)"
"$tool" derive --tek 75c734c6dd1a782de7a965da5eb93125 --start 2642976 --count 4

step "Part 1b. A real signed key list from a GAEN key server: verify it, list its keys"
"$tool" export verify "$data/ens-testExport-2-records-1-of-1.zip" --key "$data/ens-public.pem"
"$tool" export dump "$data/ens-testExport-2-records-1-of-1.zip"

step "Part 2. A bus ride in a simulated radio world (no Bluetooth hardware)"
_build/demo/tools/prox-sim bus-ride "$@"

printf '\nDone. See README.md for the daemon, the tests (scripts/test.sh) and the benchmarks.\n'
