#!/usr/bin/env bash
# Installs the Debian 12 packages proxd needs to build and test.
# Idempotent: apt-get runs only when a package is missing.
set -euo pipefail

packages=(
  build-essential pkg-config meson ninja-build clang libclang-rt-14-dev clang-format
  libglib2.0-dev libglib2.0-dev-bin libglib2.0-bin
  libsqlite3-dev sqlite3 libsodium-dev libssl-dev
  libprotobuf-c-dev protobuf-c-compiler libzip-dev zip unzip
  libjson-glib-dev libcurl4-openssl-dev libsoup-3.0-dev libqrencode-dev libpng-dev
  qrencode
  dbus dbus-bin
  qemu-system-x86 bluez bluez-test-tools busybox-static kmod cpio python3-gi
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
