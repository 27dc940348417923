#!/usr/bin/env bash
# Builds the benchmark image with umoci from this machine's Debian content:
# a busybox base, a python3 standard library layer (tens of MB), and a layer
# of many small files. Usage: scripts/bench-image.sh DIR  (creates DIR/layout)
set -euo pipefail
out=${1:?usage: bench-image.sh DIR}
mkdir -p "$out"
cd "$out"
rm -rf layout bundle
umoci init --layout layout
umoci new --image layout:bench
root=bundle/rootfs
# repack layers on the image the bundle was unpacked from: unpack afresh
# before each layer so the layers stack.
fresh() { rm -rf bundle; umoci unpack --image layout:bench bundle >/dev/null; }
fresh

mkdir -p "$root/bin"
cp /bin/busybox "$root/bin/busybox"
/bin/busybox --install -s "$root/bin" 2>/dev/null || true
for l in "$root"/bin/*; do
  [ -L "$l" ] && ln -sf /bin/busybox "$l"
done
umoci repack --image layout:bench bundle
fresh

mkdir -p "$root/usr/lib"
py=$(ls -d /usr/lib/python3.[0-9]* | head -n 1)
cp -a "$py" "$root/usr/lib/"
umoci repack --image layout:bench bundle
fresh

mkdir -p "$root/usr/share"
# Many small files: the docs under 64 KiB.
dest=$PWD/$root
(cd / && find usr/share/doc -size -64k \( -type f -o -type l \) -print0 |
  cpio -0 -pdm --quiet "$dest")
# Also delete something below, so whiteouts are part of the workload.
rm -rf "$root/usr/lib/$(basename "$py")/idlelib"
umoci repack --image layout:bench bundle
umoci config --image layout:bench --config.cmd /bin/sh >/dev/null
rm -rf bundle
echo "$out/layout:bench"
