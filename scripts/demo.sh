#!/usr/bin/env bash
# The main job, runnable on a fresh Debian 12 machine without Bluetooth hardware:
# installs what is missing, builds proxd, then
#   1. (a few seconds) what a phone broadcasts and what a signed key list is, with the
#      offline prox-tool;
#   2. (about 45 s) a 30-minute bus ride, time-compressed: a bus beacon and ten passengers,
#      each a real proxd, in a simulated radio world (fake-bluez on a private D-Bus); what
#      each device recorded; then one passenger tests positive and reports with a one-time
#      code, including her check-in at a restaurant's QR poster; the health authority
#      publishes, everyone syncs: the passengers who sat close get alerts while the far ones
#      don't, the rider who was at the restaurant with her for 15 minutes gets a venue
#      warning while the one there for 5 doesn't; then the bus operator traces the list
#      against the beacon's log and every rider aboard with her, near or far, gets a
#      same-vehicle warning (prox-sim bus-ride);
#   3. the restaurant's poster: its files and the URL its QR code holds.
# Extra arguments go to prox-sim bus-ride (e.g. --passengers 20, --keep DIR, --verbose).
# Without --keep, the ride's files stay in _build/demo/bus-ride until the next run.
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

# Where the ride's files go: the caller's --keep DIR, else a directory of the build that
# the next run replaces.
keep=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
    --keep) keep="${args[i + 1]:-}" ;;
    --keep=*) keep="${args[i]#--keep=}" ;;
    esac
done
ride_args=("$@")
if [ -z "$keep" ]; then
    keep=_build/demo/bus-ride
    rm -rf "$keep"
    ride_args+=(--keep "$keep")
fi

step "Part 1a. A phone's daily key (TEK) and the IDs it broadcasts every 10 minutes"
echo "   (Google's published test key; columns: interval number, RPI, encrypted metadata)"
"$tool" derive --tek 75c734c6dd1a782de7a965da5eb93125 --start 2642976 --count 4

step "Part 1b. A real signed key list from a GAEN key server: verify it, list its keys"
"$tool" export verify "$data/ens-testExport-2-records-1-of-1.zip" --key "$data/ens-public.pem"
"$tool" export dump "$data/ens-testExport-2-records-1-of-1.zip"

step "Part 2. A bus ride in a simulated radio world (no Bluetooth hardware)"
_build/demo/tools/prox-sim bus-ride "${ride_args[@]}"

poster="$keep/poster"
if [ -f "$poster/url.txt" ]; then
    step "Part 3. The restaurant's check-in poster"
    echo "   Print poster.svg (the QR code 15 cm wide, the name and address) or use poster.png:"
    ls -l "$poster"
    url=$(cat "$poster/url.txt")
    echo "   The QR code holds this URL; a phone's QR scanner hands it to 'proxctl checkin URL'"
    echo "   (x-scheme-handler/proxd), which checks the authority's signature first:"
    echo "   $url"
    if command -v qrencode >/dev/null; then
        qrencode -t ANSIUTF8 -m 2 "$url"
    else
        echo "   (install qrencode to see the code here; or open $poster/poster.png)"
    fi
fi

printf '\nDone. See README.md for the daemon, the tests (scripts/test.sh) and the benchmarks.\n'
