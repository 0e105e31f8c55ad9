#!/usr/bin/env bash
# Host side of the VM tests: boots Debian's kernel under qemu (TCG; KVM when /dev/kvm is
# usable) with the host root shared read-only over 9p, runs guest-init.sh as the guest's
# PID 1 (two btvirt controllers, real bluetoothd, optionally two proxd), and judges the
# machine-readable result the guest leaves in the results directory.
#
# Usage: run-vm.sh --mode dual|le --out DIR [--proxd PATH] [--cache DIR] [--timeout SECONDS]
#   dual: btvirt -l2     (BR/EDR + LE, BT 5.x, extended advertising)
#   le:   btvirt -l2 -L  (LE-only, legacy advertising)
# Exit: 0 passed, 1 failed (the guest's logs are printed), 77 skipped (qemu cannot run here).
# Environment: PROXD_VM_CACHE (image cache, default /var/tmp/proxd-vm), PROXD_VM_SMP (guest
# CPUs, default 1). The results directory is kept after every run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
srcroot=$(cd "$here/../.." && pwd)
mode=""
out=""
proxd=""
cache=${PROXD_VM_CACHE:-/var/tmp/proxd-vm}
timeout_s=150

usage() { echo "usage: $0 --mode dual|le --out DIR [--proxd PATH] [--cache DIR] [--timeout S]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --mode) mode=${2:-}; shift 2 ;;
    --out) out=${2:-}; shift 2 ;;
    --proxd) proxd=${2:-}; shift 2 ;;
    --cache) cache=${2:-}; shift 2 ;;
    --timeout) timeout_s=${2:-}; shift 2 ;;
    *) usage ;;
  esac
done
case $mode in dual | le) ;; *) usage ;; esac
[ -n "$out" ] || usage

skip() { echo "SKIP: $*"; exit 77; }
say() { echo "vm-$mode: $*"; }

# The guest runs the host's own binaries (bluetoothd, btvirt, proxd) from the shared root,
# so the guest kernel must be the host's architecture: Debian's amd64 kernel.
arch=$(uname -m)
[ "$arch" = x86_64 ] || skip "host is $arch; the VM boots Debian's amd64 kernel and runs the host's binaries in it"

need_cmds=(qemu-system-x86_64 btvirt btmon btmgmt busybox dbus-daemon depmod cpio dpkg-deb
  apt-get setpriv flock /usr/libexec/bluetooth/bluetoothd /usr/bin/python3)
missing() {
  local c
  for c in "${need_cmds[@]}"; do command -v "$c" >/dev/null 2>&1 || echo "$c"; done
  /usr/bin/python3 -c 'import gi; gi.require_version("Gio", "2.0")' 2>/dev/null || echo python3-gi
}
if [ -n "$(missing)" ]; then
  say "missing: $(missing | tr '\n' ' '); running scripts/install-deps.sh"
  "$srcroot/scripts/install-deps.sh" || true
fi
if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
  skip "qemu-system-x86_64 is not installed and scripts/install-deps.sh could not install it"
fi
left=$(missing | tr '\n' ' ')
[ -z "$left" ] || { say "FAIL: still missing after scripts/install-deps.sh: $left"; exit 1; }
qemu-system-x86_64 -accel help 2>/dev/null | grep -qx tcg ||
  skip "this qemu-system-x86_64 has no TCG accelerator"
accel=tcg,tb-size=128
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then accel=kvm; fi

image=$("$here/prepare-image.sh" "$cache")

# Results directory: only ever empty one we created (marker) or an empty one.
if [ -d "$out" ] && [ -n "$(ls -A "$out")" ]; then
  [ -f "$out/.proxd-vm-results" ] || { say "FAIL: refusing to empty $out (not a results dir)"; exit 1; }
  find "$out" -mindepth 1 -delete
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
touch "$out/.proxd-vm-results"
# The guest sees the host root except where it mounts its own tmpfs.
hidden_in_guest() {
  case $1/ in /run/* | /var/log/* | /var/lib/bluetooth/*) return 0 ;; esac
  return 1
}
if [ -n "$proxd" ]; then
  proxd=$(cd "$(dirname "$proxd")" && pwd)/$(basename "$proxd")
  [ -x "$proxd" ] || { say "FAIL: $proxd is not an executable"; exit 1; }
fi
for p in "$here" "$image" "$proxd"; do
  if [ -n "$p" ] && hidden_in_guest "$p"; then
    say "FAIL: $p is under a directory the guest replaces with tmpfs (/run, /var/log, /var/lib/bluetooth)"
    exit 1
  fi
done
# VM_BUDGET: guest uptime by which the checker must be done (the rest is for logs).
cat >"$out/vm.env" <<EOF
VM_MODE=$mode
VM_KROOT=$image/kroot
VM_SRCDIR=$here
VM_PROXD=$proxd
VM_BUDGET=$((timeout_s * 85 / 100))
EOF

qemu_pid=""
# shellcheck disable=SC2317  # called from traps
stop_qemu() {
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill -TERM "$qemu_pid" 2>/dev/null || true
    wait "$qemu_pid" 2>/dev/null || true
  fi
  qemu_pid=""
}
trap stop_qemu EXIT
trap 'stop_qemu; exit 130' INT
trap 'stop_qemu; exit 143' TERM HUP

# setpriv --pdeathsig: if this script dies even by SIGKILL, timeout and qemu die with it.
start=$(date +%s.%N)
setpriv --pdeathsig KILL timeout --kill-after=5 "$timeout_s" \
  setpriv --pdeathsig KILL qemu-system-x86_64 \
  -machine q35 -accel "$accel" -cpu max -smp "${PROXD_VM_SMP:-1}" -m 512M \
  -nodefaults -no-user-config -nographic -no-reboot -vga none -net none -monitor none \
  -serial "file:$out/console.log" \
  -kernel "$image/vmlinuz" -initrd "$image/initramfs.cpio.gz" \
  -append "console=ttyS0 loglevel=4 panic=-1 rdinit=/init vmstage2=$here/guest-init.sh" \
  -fsdev local,id=hostroot,path=/,readonly=on,security_model=none,multidevs=remap \
  -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
  -fsdev "local,id=results,path=$out,security_model=none" \
  -device virtio-9p-pci,fsdev=results,mount_tag=results &
qemu_pid=$!
set +e
wait "$qemu_pid"
qemu_rc=$?
set -e
qemu_pid=""
wall=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
say "qemu exited with $qemu_rc after ${wall}s (limit ${timeout_s}s, accel $accel)"

# A btmon capture is only readable with btmon; decode it for people once, here.
if [ -s "$out/btmon.snoop" ]; then
  timeout 60 btmon -T -r "$out/btmon.snoop" >"$out/btmon.txt" 2>&1 || true
fi

verdict=$(/usr/bin/python3 "$here/result.py" "$out/result.json" "$wall" 2>&1) && ok=1 || ok=0
echo "$verdict"
if [ "$ok" = 1 ] && [ "$qemu_rc" = 0 ]; then
  exit 0
fi

show() { # file [tail-lines]
  [ -f "$1" ] || { echo "===== $(basename "$1"): (none)"; return; }
  if [ -n "${2:-}" ]; then
    echo "===== $(basename "$1") (last $2 lines)"
    tail -n "$2" "$1"
  else
    echo "===== $(basename "$1")"
    cat "$1"
  fi
}
echo "vm-$mode FAILED; guest logs follow (all files: $out)"
show "$out/guest.log"
show "$out/check.log"
show "$out/console.log" 80
show "$out/bluetoothd.log" 120
for f in "$out"/proxd-*.log; do [ -e "$f" ] && show "$f" 120; done
show "$out/btvirt.log" 40
for core in "$out"/core.*; do
  [ -e "$core" ] || continue
  exe=$(basename "$core")
  exe=${exe#core.}
  exe=${exe%.*}
  exe=${exe//!//}
  echo "===== $(basename "$core"): $exe crashed"
  if command -v gdb >/dev/null 2>&1; then
    timeout 60 gdb -q -batch -ex 'thread apply all bt' "$exe" "$core" 2>&1 | tail -n 60 || true
  fi
done
show "$out/btmon.txt" 200
exit 1
