#!/bin/sh
# Fetch Debian's static busybox for arm64, an arm64 ELF the boot-check tests
# put in an amd64 image. Downloads the package without installing it (adds
# the arm64 architecture to dpkg's list when missing). Idempotent; prints
# the binary's path.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
dest_dir=${INITRAMFS_STREAM_ARM64_DIR:-$root/target/test-arm64}
dest=$dest_dir/busybox

log() { printf 'fetch-arm64-busybox: %s\n' "$*" >&2; }
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if [ -x "$dest" ]; then
    echo "$dest"
    exit 0
fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "dpkg --add-architecture arm64"
    as_root dpkg --add-architecture arm64
    as_root apt-get update -qq >&2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download busybox-static:arm64 >&2; then
    as_root apt-get update -qq >&2
    apt-get download busybox-static:arm64 >&2
fi
dpkg-deb -x busybox-static_*_arm64.deb x
mkdir -p "$dest_dir"
cp x/bin/busybox "$dest.tmp"
mv "$dest.tmp" "$dest"
log "$dest"
echo "$dest"
