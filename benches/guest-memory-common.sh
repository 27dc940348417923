# Shared by benches/guest-memory.sh and benches/guest-memory-fit.sh: source
# it after setting $arch (amd64 or arm64) and $work. Builds the tool and
# sets $bin, $kernel, $busybox, $qemu (an array), $console and $layout (an
# OCI layout whose image `bb` holds busybox for $arch), and fills
# $work/random with 200 MiB of random files.

cargo build --quiet
bin=$PWD/target/debug/initramfs-stream
kernel=$(scripts/fetch-kernel.sh "$arch" | tail -n 1)
case $arch in
amd64)
    busybox=/bin/busybox
    qemu=(qemu-system-x86_64) console=ttyS0
    ;;
arm64)
    busybox=$(scripts/fetch-arm64-busybox.sh | tail -n 1)
    qemu=(qemu-system-aarch64 -M virt -cpu cortex-a57) console=ttyAMA0
    ;;
*) echo "unknown architecture $arch" >&2; exit 1 ;;
esac

layout=$work/oci-$arch
if [[ ! -d $layout ]]; then
    umoci init --layout "$layout"
    umoci new --image "$layout:base"
    umoci unpack --image "$layout:base" "$work/bundle" >/dev/null
    mkdir -p "$work/bundle/rootfs/bin"
    cp "$busybox" "$work/bundle/rootfs/bin/busybox"
    ln -s busybox "$work/bundle/rootfs/bin/sh"
    umoci repack --image "$layout:base" "$work/bundle"
    rm -rf "$work/bundle"
    umoci config --image "$layout:base" --tag bb --architecture "$arch"
fi
if [[ ! -d $work/random ]]; then
    mkdir -p "$work/random"
    for i in $(seq 1 20); do head -c $((10 << 20)) /dev/urandom > "$work/random/f$i"; done
fi
