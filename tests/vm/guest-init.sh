#!/usr/bin/env bash
# Stage 2 of the VM: runs as PID 1 in the guest after the initramfs switched to the host root
# (read-only 9p; tmpfs on /run /var/log /var/lib/bluetooth). The host's run-vm.sh wrote the
# run's settings to /run/vm/results/vm.env; everything this script and the checker produce
# lands in /run/vm/results (a writable 9p share the host reads after qemu exits).
#
# Sets up the kernel side (modules, AF_ALG), the system bus, btmon and two btvirt
# controllers, then hands over to guest-check.py, which starts bluetoothd (and proxd) and
# asserts. Whatever happens, it collects logs and powers the guest off: PID 1 must not exit
# (the kernel would panic; with panic=-1 and qemu's -no-reboot that still ends qemu, but
# without the logs).
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
# The host root is read-only here; /run is the guest's own tmpfs.
export HOME=/run/vm/home TMPDIR=/run/vm/tmp
results=/run/vm/results
btmon_pid=""
btvirt_pid=""

uptime_s() { cut -d' ' -f1 /proc/uptime; }
log() { echo "[$(uptime_s)] $*" >>"$results/guest.log"; }

# Runs from the ERR trap too, so nothing in here may fail.
finish() {
  trap - ERR
  set +e
  log "finish: $1"
  echo "$1" >"$results/guest-status"
  dmesg >"$results/dmesg.txt" 2>&1
  ps -eo pid,ppid,rss,etimes,args >"$results/ps.txt" 2>&1
  if [ -n "$btvirt_pid" ]; then
    kill "$btvirt_pid" 2>/dev/null
  fi
  if [ -n "$btmon_pid" ]; then
    kill -INT "$btmon_pid" 2>/dev/null
    wait "$btmon_pid" 2>/dev/null
  fi
  log "power off"
  sync
  # reboot(2) does not return.
  busybox poweroff -f
}
trap 'finish "failed at line $LINENO: $BASH_COMMAND"' ERR

# shellcheck source=/dev/null
. "$results/vm.env"
mkdir -p "$HOME" "$TMPDIR" /dev/pts /dev/shm
log "stage 2 on $(uname -r), mode $VM_MODE"
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
hostname proxd-vm
# Core dumps of anything that crashes (proxd, bluetoothd) go to the host with the results;
# run-vm.sh prints their backtraces. %E is the executable's path with '!' for '/'.
echo "$results/core.%E.%p" >/proc/sys/kernel/core_pattern
ulimit -c unlimited

# The guest kernel's modules are in the image cache (shared with the host root), not in
# /lib/modules: point both our modprobe calls and the kernel's request_module() there.
printf '#!/bin/sh\nexec /sbin/modprobe -d %s "$@"\n' "$VM_KROOT" >/run/vm/modprobe
chmod 0755 /run/vm/modprobe
echo /run/vm/modprobe >/proc/sys/kernel/modprobe
# hci_vhci for btvirt; AF_ALG ecb(aes)/cmac(aes) for btvirt's emulated LE crypto;
# ECDH and a DRBG for the kernel's SMP.
/run/vm/modprobe -a hci_vhci af_alg algif_hash algif_skcipher ecb cmac ecdh_generic \
  drbg jitterentropy_rng
log "modules: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"

# Under TCG the first use of an AF_ALG algorithm (template instantiation, self-tests,
# request_module round trips) takes seconds. btvirt binds ecb(aes) and cmac(aes) while it
# creates its controllers and answers no HCI command until all exist, so a cold start can
# make the kernel's HCI_Reset of hci0 time out. Instantiate both once up front.
/usr/bin/python3 - <<'EOF'
import socket
for alg in (("skcipher", "ecb(aes)"), ("hash", "cmac(aes)")):
    socket.socket(socket.AF_ALG, socket.SOCK_SEQPACKET).bind(alg)
EOF
log "AF_ALG ecb(aes) and cmac(aes) ready"

# System bus: the stock configuration plus a policy that lets root own and be called on
# org.proxd names (the project's own policy is for a dedicated user this guest lacks).
mkdir -p /run/dbus
cat >/run/vm/system-bus.conf <<'EOF'
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <include>/usr/share/dbus-1/system.conf</include>
  <policy user="root">
    <allow own_prefix="org.proxd"/>
  </policy>
  <policy context="default">
    <allow send_destination_prefix="org.proxd"/>
  </policy>
</busconfig>
EOF
dbus-daemon --config-file=/run/vm/system-bus.conf --fork --print-pid=3 3>/run/vm/dbus.pid \
  >>"$results/dbus.log" 2>&1
log "system bus up (pid $(cat /run/vm/dbus.pid))"

# HCI capture of everything the controllers see, from before they exist. btmon writes the
# btsnoop header first; no event says it is attached, so poll for that header.
btmon -w "$results/btmon.snoop" >/dev/null 2>"$results/btmon.err" &
btmon_pid=$!
for _ in $(seq 100); do
  [ -s "$results/btmon.snoop" ] && break
  kill -0 "$btmon_pid"
  sleep 0.05
done
[ -s "$results/btmon.snoop" ] || finish "btmon wrote no capture header"
log "btmon capturing (pid $btmon_pid)"

# Both controllers must come from one btvirt process: that is what makes them one radio
# world. The kernel sets them up asynchronously and mgmt has no "controller ready" event
# that btmgmt could wait on, so poll its controller list.
case $VM_MODE in
  dual) btvirt_flags=(-l2) ;;
  le) btvirt_flags=(-l2 -L) ;;
  *) finish "unknown mode $VM_MODE" ;;
esac
controllers() { btmgmt info 2>/dev/null | grep -c '^hci[0-9]' || true; }
n=0
for try in 1 2 3; do
  btvirt "${btvirt_flags[@]}" >>"$results/btvirt.log" 2>&1 &
  btvirt_pid=$!
  log "btvirt ${btvirt_flags[*]} started (pid $btvirt_pid, try $try)"
  for _ in $(seq 100); do
    n=$(controllers)
    [ "$n" -ge 2 ] && break
    sleep 0.1
  done
  [ "$n" -ge 2 ] && break
  log "only $n controller(s) after 10 s; restarting btvirt"
  kill "$btvirt_pid"
  wait "$btvirt_pid" || true
done
[ "$n" -ge 2 ] || finish "btvirt's controllers did not come up"
btmgmt info >"$results/btmgmt-info.txt" 2>&1
log "controllers up: $(grep -o '^hci[0-9]*' "$results/btmgmt-info.txt" | tr '\n' ' ')"

log "checker start"
rc=0
/usr/bin/python3 -u "$VM_SRCDIR/guest-check.py" >"$results/check.log" 2>&1 || rc=$?
log "checker exit $rc"
finish "checker exit $rc"
