#!/usr/bin/env bash
# The main job in one command, on a fresh Debian machine with no registry:
# installs what it needs (umoci, busybox-static, QEMU, a Debian cloud kernel),
# builds the tool, makes the example image, converts it and boots it under
# QEMU as a Firecracker-like microVM. Exits 0 when the image's command ran
# and the VM ended by itself.
#
#   scripts/demo.sh            # builds with cargo build --release
#   INITRAMFS_STREAM=path/to/initramfs-stream scripts/demo.sh   # uses that binary
set -euo pipefail
cd "$(dirname "$0")/.."
work=${DEMO_DIR:-target/demo}
mkdir -p "$work"

say() { printf '\n== %s\n' "$*" >&2; }

say "kernel and tools (scripts/fetch-kernel.sh)"
kernel=$(scripts/fetch-kernel.sh)

bin=${INITRAMFS_STREAM:-}
if [[ -z $bin ]]; then
    say "building (cargo build --release)"
    cargo build --release --quiet
    bin=target/release/initramfs-stream
fi

say "example image (scripts/example-image.sh)"
image=$(scripts/example-image.sh "$work")

say "converting: initramfs-stream $image -o $work/example.cpio.gz"
"$bin" "$image" -o "$work/example.cpio.gz"

say "booting under QEMU (-M microvm,acpi=off, as Firecracker)"
console=$work/console.log
timeout 120 qemu-system-x86_64 -M microvm,acpi=off -accel tcg -m 256 -nographic -no-reboot \
    -kernel "$kernel" -initrd "$work/example.cpio.gz" \
    -append 'console=ttyS0 panic=-1 quiet tsc_early_khz=2000000' </dev/null |
    tee "$console" | grep -v '^\[' || true
if grep -q 'initramfs-stream: command exited with status 0' "$console" &&
    ! grep -q 'Kernel panic' "$console"; then
    say "the VM ran the image's command and ended by itself"
else
    say "the VM did not run the command cleanly; console in $console"
    exit 1
fi
