#!/usr/bin/env bash
# The main job, runnable on a fresh Debian 12 machine without Bluetooth hardware:
# installs what is missing, builds proxd, and walks through what a device and a health
# authority do with the offline prox-tool — GAEN IDs from a key, a real signed GAEN key
# list verified and listed, our own authority key signing a list, and the matcher finding
# planted encounters among random keys.
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
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. A phone's daily key (TEK) and the IDs it broadcasts every 10 minutes"
echo "   (Google's published test key; columns: interval number, RPI, encrypted metadata)"
"$tool" derive --tek 75c734c6dd1a782de7a965da5eb93125 --start 2642976 --count 4

step "2. A real signed key list from a GAEN key server: verify its ECDSA signature"
"$tool" export verify "$data/ens-testExport-2-records-1-of-1.zip" --key "$data/ens-public.pem"
echo "   ... and list the infected people's keys it carries:"
"$tool" export dump "$data/ens-testExport-2-records-1-of-1.zip"

step "3. Our health authority: make an Ed25519 signing key, sign a list, verify it"
"$tool" export keygen --key-id demo-authority --key-version v1 --out "$work/authority"
"$tool" export sign --key "$work/authority.sec" --out "$work/batch-1.zip" \
    --region VN "$data/ens-keys.json"
"$tool" export verify "$work/batch-1.zip" --key "$work/authority.pub"
echo "   A list with one byte changed is refused:"
cp "$work/batch-1.zip" "$work/tampered.zip"
size=$(stat -c %s "$work/tampered.zip")
printf '\x00' | dd of="$work/tampered.zip" bs=1 seek=$((size / 3)) conv=notrunc status=none
if "$tool" export verify "$work/tampered.zip" --key "$work/authority.pub"; then
    echo "   tampered list was accepted: this is a bug" >&2
    exit 1
fi

step "4. On-device matching: 50,000 F0 keys against 20,000 IDs heard in 14 days"
"$tool" bench match --keys 50000 --observed 20000

printf '\nDone. See README.md for the daemon, the tests (scripts/test.sh) and the benchmarks.\n'
