#!/usr/bin/env bash
# Builds (once) and caches what the VM tests boot: Debian's stock 6.1 kernel, the subset of its
# module tree that Bluetooth, AF_ALG crypto and virtio-9p need, and a busybox initramfs that
# mounts the host root read-only over 9p and hands over to a stage-2 script on that root.
# Nothing is compiled; everything comes from Debian packages.
#
# Usage: prepare-image.sh CACHE_DIR
# Prints the image directory (CACHE_DIR/<kernel package>) on stdout. That directory holds
#   vmlinuz, initramfs.cpio.gz, kroot/lib/modules/<kver>/..., kver, and a stamp that ties it
#   to this script's content, so editing the script rebuilds the image.
set -euo pipefail

cache=${1:?usage: prepare-image.sh CACHE_DIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

log() { echo "prepare-image: $*" >&2; }

# Module directories extracted from the package (the full tree is ~400 MB unpacked).
module_dirs=(
  kernel/net/bluetooth kernel/drivers/bluetooth kernel/net/rfkill
  kernel/crypto kernel/arch/x86/crypto kernel/lib
  kernel/net/9p kernel/fs/9p kernel/fs/netfs kernel/fs/fscache kernel/drivers/virtio
)
# Loaded by the initramfs itself, before the host root is reachable.
initramfs_modules=(virtio_pci 9pnet_virtio 9p)

resolve_kernel_package() {
  local pkg
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.1\.0-[0-9]+-amd64$/ { print $2; exit }')
  if [ -z "$pkg" ]; then
    log "apt has no linux-image-amd64 in its lists; running apt-get update"
    apt-get update -qq >&2
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
      awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.1\.0-[0-9]+-amd64$/ { print $2; exit }')
  fi
  [ -n "$pkg" ] || { log "cannot resolve linux-image-6.1.0-*-amd64 with apt-cache"; return 1; }
  echo "$pkg"
}

stamp_of() { sha256sum "$here/prepare-image.sh" | cut -d' ' -f1; }

# Serialise concurrent runs (two modes started by hand at once).
exec 9>"$cache/.lock"
flock 9

# Reuse any complete image built by this version of the script; resolving the package name
# needs apt's lists, which a machine may have dropped, so only do it when building.
want_stamp=$(stamp_of)
for dir in "$cache"/linux-image-*; do
  if [ -f "$dir/stamp" ] && [ "$(cat "$dir/stamp")" = "$want_stamp" ]; then
    echo "$dir"
    exit 0
  fi
done

pkg=$(resolve_kernel_package)
img="$cache/$pkg"
log "building $img"
rm -rf "$img"
mkdir -p "$img" "$cache/dl"
deb=$(find "$cache/dl" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
if [ -z "$deb" ]; then
  (cd "$cache/dl" && apt-get download -o APT::Sandbox::User=root "$pkg" >&2) || {
    log "apt-get download $pkg failed; refreshing apt lists and retrying"
    apt-get update -qq >&2
    (cd "$cache/dl" && apt-get download -o APT::Sandbox::User=root "$pkg" >&2)
  }
  deb=$(find "$cache/dl" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
fi
# Keep only the package this image uses.
find "$cache/dl" -maxdepth 1 -name '*.deb' ! -name "${pkg}_*.deb" -delete

kver=${pkg#linux-image-}
patterns=("./boot/vmlinuz-$kver" "./lib/modules/$kver/modules.*")
for d in "${module_dirs[@]}"; do patterns+=("./lib/modules/$kver/$d/*"); done
mkdir -p "$img/kroot"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$img/kroot" --wildcards "${patterns[@]}"
mv "$img/kroot/boot/vmlinuz-$kver" "$img/vmlinuz"
rmdir "$img/kroot/boot"
depmod -b "$img/kroot" "$kver"
mdir="$img/kroot/lib/modules/$kver"

# Modules for the initramfs, dependencies first. modules.dep lists a module's dependencies
# so that loading them right to left works.
declare -A seen=()
load_order=()
add_module() {
  local name=$1 line path dep deps i
  [ -z "${seen[$name]:-}" ] || return 0
  seen[$name]=1
  line=$(grep -E "(^|/)${name}\.ko:" "$mdir/modules.dep" || true)
  if [ -z "$line" ]; then
    grep -qE "(^|/)${name}\.ko$" "$mdir/modules.builtin" && return 0
    log "module $name is neither in modules.dep nor built in"
    return 1
  fi
  path=${line%%:*}
  read -r -a deps <<<"${line#*:}"
  for ((i = ${#deps[@]} - 1; i >= 0; i--)); do
    dep=$(basename "${deps[$i]}" .ko)
    add_module "$dep"
  done
  load_order+=("$path")
}
for m in "${initramfs_modules[@]}"; do add_module "$m"; done

root="$img/initramfs"
mkdir -p "$root"/{bin,dev,proc,sys,newroot,modules}
cp /bin/busybox "$root/bin/busybox"
: >"$root/modules/order"
for p in "${load_order[@]}"; do
  cp "$mdir/$p" "$root/modules/"
  basename "$p" >>"$root/modules/order"
done
cat >"$root/init" <<'EOF'
#!/bin/busybox sh
# PID 1 of the initramfs: mount the host root read-only over virtio-9p, writable tmpfs where
# daemons need to write, the results share, then switch_root to the stage-2 script named by
# the kernel command line (vmstage2=..., passed to init as an environment variable).
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "initramfs: $*" >/dev/console; poweroff -f; }
while read -r m; do insmod "/modules/$m" || fail "insmod $m failed"; done </modules/order
opts=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o "$opts,ro,cache=loose" hostroot /newroot || fail "cannot mount the host root"
# Writable tmpfs only where daemons write; everything else (the source and build trees
# included, wherever they are) stays visible from the host.
for d in run var/log var/lib/bluetooth; do
  mount -t tmpfs -o mode=0755 tmpfs "/newroot/$d" || fail "cannot mount tmpfs on /$d"
done
mkdir -p /newroot/run/vm/results
mount -t 9p -o "$opts,rw" results /newroot/run/vm/results || fail "cannot mount the results share"
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
[ -n "$vmstage2" ] || fail "no vmstage2= on the kernel command line"
exec switch_root /newroot "$vmstage2"
EOF
chmod 0755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$img/initramfs.cpio.gz"
rm -rf "$root"
echo "$kver" >"$img/kver"
echo "$want_stamp" >"$img/stamp"
# Older images are superseded.
for dir in "$cache"/linux-image-*; do
  [ "$dir" = "$img" ] || rm -rf "$dir"
done
log "kernel $kver, initramfs modules: ${load_order[*]##*/}"
echo "$img"
