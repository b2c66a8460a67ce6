#!/usr/bin/env bash
# Installs the Debian tools psy runs (and its tests use); gcc, pkg-config, libssl-dev and
# zlib1g-dev for the tests to build apk-tools (test/helpers/apk-tools.ts); patchelf for the
# offline fixture's glibc stand-in packages; age, nebula and OpenSSH for psy node and
# psy deploy. Needs root or sudo, unless every package is already installed: then it
# does nothing.
set -euo pipefail
PACKAGES=(
  squashfs-tools e2fsprogs dosfstools mtools fdisk
  grub-efi-amd64-bin grub-common memtest86+
  qemu-system-x86 ovmf
  minisign cpio xz-utils zstd gzip kmod patch openssl ca-certificates busybox-static mount util-linux
  age nebula openssh-client openssh-server patchelf
  python3 make g++
  gcc pkg-config libssl-dev zlib1g-dev
)
if command -v dpkg-query >/dev/null &&
  ! dpkg-query -W -f='${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>&1 | grep -qv '^ii '; then
  echo "Debian tools: all installed"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
