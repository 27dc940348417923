#!/usr/bin/env bash
# End-to-end benchmark: converts the image built by scripts/bench-image.sh
# and compares with the cost of decompressing its layers once with gzip -dc.
# Usage: benches/compare.sh [WORKDIR]   (needs umoci, busybox, cpio, gzip)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}
runs=${RUNS:-5}
cargo build --release --quiet
bin=$PWD/target/release/initramfs-stream
ref=$(scripts/bench-image.sh "$work" | tail -n 1)
layout=${ref%:*}
layers=$(python3 -c 'import json,sys
idx=json.load(open(sys.argv[1]+"/index.json"))
m=idx["manifests"][0]["digest"].split(":")[1]
man=json.load(open(sys.argv[1]+"/blobs/sha256/"+m))
print(" ".join(sys.argv[1]+"/blobs/sha256/"+l["digest"].split(":")[1] for l in man["layers"]))' "$layout")

source benches/common.sh

uncompressed=$(for l in $layers; do gzip -dc "$l"; done | wc -c)
paths=$(for l in $layers; do gzip -dc "$l" | tar -t; done | sort -u | wc -l)
read -r floor _ _ < <(best sh -c "for l in $layers; do gzip -dc \$l; done")
read -r none none_m _ < <(best "$bin" "oci:$layout:bench" --no-init -c none)
read -r gz gz_m _ < <(best "$bin" "oci:$layout:bench" --no-init -c gzip)
read -r zs zs_m _ < <(best "$bin" "oci:$layout:bench" --no-init -c zstd)
echo "image: $((uncompressed / 1000000)) MB uncompressed, $paths tar paths; best of $runs runs, $(nproc) cores"
echo "| what | time | peak RSS |"
echo "| --- | --- | --- |"
echo "| gzip -dc of the layers (one read) | ${floor} s | - |"
echo "| initramfs-stream -c none | ${none} s | $((none_m / 1024)) MB |"
echo "| initramfs-stream -c gzip | ${gz} s | $((gz_m / 1024)) MB |"
echo "| initramfs-stream -c zstd | ${zs} s | $((zs_m / 1024)) MB |"
awk -v a="$none" -v b="$floor" 'BEGIN{printf "ratio -c none / gzip -dc: %.2f\n", a/b}'
