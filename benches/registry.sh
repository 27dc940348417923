#!/usr/bin/env bash
# Registry pull benchmark: pushes the image of scripts/bench-image.sh to a
# loopback docker-registry and compares pulling it with converting the OCI
# layout it came from (-c none, best of $RUNS): wall time and peak RSS.
# Targets: pull time <= 1.2x layout time; pull RSS < 64 MiB + compressed size.
# Usage: benches/registry.sh [WORKDIR]  (needs docker-registry, skopeo, umoci)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}
runs=${RUNS:-5}
cargo build --release --quiet
bin=$PWD/target/release/initramfs-stream
ref=$(scripts/bench-image.sh "$work" | tail -n 1)
layout=${ref%:*}

source benches/common.sh
start_registry
skopeo copy -q --dest-tls-verify=false "oci:$layout:bench" "docker://127.0.0.1:$port/bench:latest"

compressed=$(python3 -c 'import json,sys
idx=json.load(open(sys.argv[1]+"/index.json"))
m=idx["manifests"][0]["digest"].split(":")[1]
man=json.load(open(sys.argv[1]+"/blobs/sha256/"+m))
print(sum(l["size"] for l in man["layers"]))' "$layout")


# Same bytes, or the comparison means nothing.
cmp <("$bin" "oci:$layout:bench" --no-init -c none) \
    <("$bin" "127.0.0.1:$port/bench:latest" --plain-http --no-init -c none)

read -r local_t local_m _ < <(best "$bin" "oci:$layout:bench" --no-init -c none)
read -r pull_t pull_m _ < <(best "$bin" "127.0.0.1:$port/bench:latest" --plain-http --no-init -c none)
read -r small_t small_m _ < <(best "$bin" "127.0.0.1:$port/bench:latest" --plain-http --no-init -c none --memory-limit 0)
echo "image: $((compressed / 1000000)) MB compressed; best of $runs runs, $(nproc) cores, loopback registry"
echo "| what | time | peak RSS |"
echo "| --- | --- | --- |"
echo "| oci layout, -c none | ${local_t} s | $((local_m / 1024)) MB |"
echo "| registry pull, -c none | ${pull_t} s | $((pull_m / 1024)) MB |"
echo "| registry pull, -c none --memory-limit 0 | ${small_t} s | $((small_m / 1024)) MB |"
awk -v a="$pull_t" -v b="$local_t" 'BEGIN{printf "time ratio pull / layout: %.2f (target <= 1.2)\n", a/b}'
awk -v m="$pull_m" -v c="$compressed" 'BEGIN{printf "pull RSS - compressed size: %.1f MiB (target < 64)\n", (m*1024-c)/1048576}'
