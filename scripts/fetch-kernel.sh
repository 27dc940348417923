#!/bin/sh
# Fetch the Debian cloud kernel image used by the boot tests, without installing
# any kernel package (that would pull in initramfs-tools and bootloader hooks).
# `fetch-kernel.sh` fetches the amd64 kernel to target/test-kernel/vmlinuz,
# `fetch-kernel.sh arm64` the arm64 one to target/test-kernel/arm64/vmlinuz
# (an uncompressed Image that qemu-system-aarch64 boots directly).
# Idempotent: does nothing when the kernel already exists.
# Also installs what the boot tests run when it is missing (qemu, and
# busybox-static, umoci and cpio to build test images). Prints the kernel path.
set -eu

arch=${1:-amd64}
case $arch in
amd64) qemu=qemu-system-x86_64 qemu_pkg=qemu-system-x86 sub= ;;
arm64) qemu=qemu-system-aarch64 qemu_pkg=qemu-system-arm sub=/arm64 ;;
*) echo "fetch-kernel: unknown architecture $arch (amd64 or arm64)" >&2; exit 1 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
dest_dir=${INITRAMFS_STREAM_KERNEL_DIR:-$root/target/test-kernel$sub}
dest=$dest_dir/vmlinuz

log() { printf 'fetch-kernel: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=
apt_update_once() {
    if [ -z "$apt_updated" ]; then
        log "apt-get update"
        as_root apt-get update -qq >&2
        apt_updated=1
    fi
}

missing=
need() { # FILE PACKAGE
    [ -x "$1" ] || command -v "$1" >/dev/null 2>&1 || missing="$missing $2"
}
need "$qemu" "$qemu_pkg"
# The dynamic busybox package would not run inside an empty image.
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' ||
    missing="$missing busybox-static"
need umoci umoci
need cpio cpio
if [ -n "$missing" ]; then
    apt_update_once
    log "installing$missing"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
        $missing >&2 || log "could not install:$missing"
fi

if [ -s "$dest" ]; then
    printf '%s\n' "$dest"
    exit 0
fi

# arm64 packages are downloaded, never installed: the architecture only
# makes apt's lists include them.
if [ "$arch" = arm64 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    as_root dpkg --add-architecture arm64
    apt_updated=
fi
if [ "$arch" = arm64 ]; then
    meta=linux-image-cloud-arm64:arm64
else
    meta=linux-image-cloud-amd64
fi
# The meta package depends on the current ABI-versioned image package.
find_pkg() {
    apt-cache depends "$meta" 2>/dev/null |
        sed -n "s/^ *Depends: \(linux-image-[0-9].*-cloud-$arch\)\(:$arch\)\{0,1\}\$/\1/p" | head -n 1
}
pkg=$(find_pkg)
if [ -z "$pkg" ]; then
    apt_update_once
    pkg=$(find_pkg)
fi
if [ -z "$pkg" ]; then
    log "cannot find the package behind $meta"
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
# apt-get download writes into the current directory; _apt needs to write there.
chmod 0777 "$work"
download() {
    log "kernel package: $pkg"
    (cd "$work" && apt-get download -qq "$pkg:$arch" >&2)
}
if ! download; then
    # Stale package lists name a version the mirror no longer has.
    [ -z "$apt_updated" ] || exit 1
    apt_update_once
    pkg=$(find_pkg)
    [ -n "$pkg" ] && download
fi
deb=$(ls "$work"/*.deb)
version=${pkg#linux-image-}
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" "./boot/vmlinuz-$version"

mkdir -p "$dest_dir"
# Rename into place so an interrupted run never leaves a truncated kernel.
cp "$work/boot/vmlinuz-$version" "$dest.tmp"
mv "$dest.tmp" "$dest"
printf '%s\n' "$version" >"$dest_dir/version"
printf '%s\n' "$dest"
