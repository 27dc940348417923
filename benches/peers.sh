#!/usr/bin/env bash
# Side by side on the image of scripts/bench-image.sh: initramfs-stream
# against the codec floors (pigz, gzip -dc + zstd on the flattened cpio),
# the materialising pipeline (umoci unpack + find | cpio | gzip), and the
# peer tool initramfs-builder pulling from a loopback HTTPS registry with a
# test CA. Best of $RUNS wall-clock runs; peak RSS and disk writes of that
# run. Prints a markdown table, then the targets and whether each is met.
# Usage: benches/peers.sh [WORKDIR]
#   needs umoci, skopeo, docker-registry, openssl, pigz, zstd, cpio, gzip;
#   INITRAMFS_BUILDER=path (default: initramfs-builder on PATH, else
#   `cargo install initramfs-builder --version 0.2.1` beforehand).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(realpath "${1:-$(mktemp -d)}")
runs=${RUNS:-5}
cargo build --release --quiet
bin=$PWD/target/release/initramfs-stream
peer=${INITRAMFS_BUILDER:-$(command -v initramfs-builder || true)}
ref=$(scripts/bench-image.sh "$work" | tail -n 1)
layout=${ref%:*}
image="oci:$layout:bench"
read -r layers compressed < <(python3 -c 'import json,sys
idx=json.load(open(sys.argv[1]+"/index.json"))
m=idx["manifests"][0]["digest"].split(":")[1]
man=json.load(open(sys.argv[1]+"/blobs/sha256/"+m))
print(",".join(sys.argv[1]+"/blobs/sha256/"+l["digest"].split(":")[1] for l in man["layers"]),
      sum(l["size"] for l in man["layers"]))' "$layout")
layers=${layers//,/ }
flat=$work/flat.cpio
"$bin" "$image" --no-init -c none -o "$flat"
uncompressed=$(stat -c %s "$flat")

source benches/common.sh

mib() { awk -v k="$1" 'BEGIN{printf "%.0f MiB", k/1024}'; }
mb() { awk -v b="$1" 'BEGIN{printf "%.1f MB", b/1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
met() { awk -v a="$1" -v b="$2" 'BEGIN{exit !(a <= b)}' && echo met || echo "NOT met"; }

# Ours, the archive to stdout (/dev/null).
read -r none_t none_m none_w < <(best "$bin" "$image" --no-init -c none)
read -r gz_t gz_m gz_w < <(best "$bin" "$image" --no-init -c gzip)
read -r zs_t zs_m zs_w < <(best "$bin" "$image" --no-init -c zstd)
# Codec floors on the flattened archive, read from a (cached) file.
read -r pigz_t pigz_m _ < <(best pigz -6 -c "$flat")
read -r zstd_t zstd_m _ < <(best zstd -3 -T0 -q -c "$flat")
read -r dc_t dc_m _ < <(best sh -c "for l in $layers; do gzip -dc \$l; done")
floor_zs=$(awk -v a="$dc_t" -v b="$zstd_t" 'BEGIN{printf "%.2f", a+b}')
# The materialising pipeline: a rootfs on disk, then cpio and gzip.
bundle=$work/bundle
read -r mat_t mat_m mat_w < <(best --before "rm -rf $bundle" sh -c \
  "umoci unpack --image '$layout:bench' '$bundle' >/dev/null &&
   cd '$bundle/rootfs' && find . | cpio -o -H newc --quiet | gzip -6 >'$work/mat.cpio.gz'")
rm -rf "$bundle"

# No byte on disk but the output: an empty TMPDIR stays empty, and the
# bytes the process wrote to the file system match the output's size.
scratch=$work/tmpdir
rm -rf "$scratch" && mkdir "$scratch"
out=$work/ours.cpio.gz
rm -f "$out"
sync
/usr/bin/time -o "$work/io" -f '%O' env TMPDIR="$scratch" "$bin" "$image" --no-init -c gzip -o "$out"
sync
written=$(($(cat "$work/io") * 512))
out_size=$(stat -c %s "$out")
leftovers=$(find "$scratch" -mindepth 1 | wc -l)

# Registry pulls over HTTPS on loopback, with a test CA.
tls=$work/tls
mkdir -p "$tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
  -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n' >"$tls/ext"
openssl x509 -req -days 2 -CAcreateserial -in "$tls/server.csr" -CA "$tls/ca.crt" \
  -CAkey "$tls/ca.key" -extfile "$tls/ext" -out "$tls/server.crt" 2>/dev/null
mkdir -p "$tls/certs.d" && cp "$tls/ca.crt" "$tls/certs.d/"
start_registry "$tls"
skopeo copy -q --dest-cert-dir "$tls/certs.d" "$image" "docker://127.0.0.1:$port/bench:latest"
remote=127.0.0.1:$port/bench:latest
pull_out=$work/pull.cpio.gz
read -r pull_t pull_m pull_w < <(best --before "rm -f $pull_out" \
  "$bin" "$remote" --ca-file "$tls/ca.crt" --no-init -c gzip -o "$pull_out")
peer_row="| initramfs-builder 0.2.1 pull, gzip | not run: no initramfs-builder binary | | | |"
if [[ -x $peer ]]; then
  peer_out=$work/peer.cpio.gz
  peer_tmp=$work/peer-tmp
  # It unpacks into TMPDIR; keep that on the same disk as everything else.
  if read -r peer_t peer_m peer_w < <(best --before "rm -rf $peer_out $peer_tmp; mkdir $peer_tmp" \
    env TMPDIR="$peer_tmp" SSL_CERT_FILE="$tls/ca.crt" \
    "$peer" build "$remote" -c gzip -o "$peer_out"); then
    peer_entries=$(gzip -dc "$peer_out" | cpio -it --quiet 2>/dev/null | wc -l)
    ours_entries=$(gzip -dc "$pull_out" | cpio -it --quiet 2>/dev/null | wc -l)
    peer_row="| initramfs-builder 0.2.1 pull, gzip ($peer_entries entries; ours $ours_entries) | $peer_t s | $(mib "$peer_m") | $(mb "$peer_w") | pull / this: $(ratio "$pull_t" "$peer_t") (≤ 0.5) |"
  else
    peer_row="| initramfs-builder 0.2.1 pull, gzip | failed, see $work/peer-tmp | | | |"
    peer_t=
  fi
  rm -rf "$peer_tmp"
fi

echo "$(date -u +%F), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo "image: $(mb "$uncompressed") as a cpio, $(mb "$compressed") of gzip layers; best of $runs runs"
echo
echo "| what | time | peak RSS | written to disk | ratio (target) |"
echo "| --- | --- | --- | --- | --- |"
echo "| \`initramfs-stream -c none\` | ${none_t} s | $(mib "$none_m") | – | – |"
echo "| \`initramfs-stream -c gzip\` | ${gz_t} s | $(mib "$gz_m") | – | – |"
echo "| \`initramfs-stream -c zstd\` | ${zs_t} s | $(mib "$zs_m") | – | – |"
echo "| \`pigz -6\` of the flattened cpio | ${pigz_t} s | $(mib "$pigz_m") | – | gzip / pigz: $(ratio "$gz_t" "$pigz_t") (≤ 1.25) |"
echo "| \`gzip -dc\` of the layers + \`zstd -3 -T0\` of the cpio | ${dc_t} + ${zstd_t} s | $(mib "$zstd_m") | – | zstd / floor: $(ratio "$zs_t" "$floor_zs") (≤ 1.25) |"
echo "| \`umoci unpack\` + \`find \| cpio -o -H newc \| gzip\` | ${mat_t} s | $(mib "$mat_m") | $(mb "$mat_w") | gzip / this: $(ratio "$gz_t" "$mat_t") (≤ 0.5) |"
echo "| \`initramfs-stream\` pull over HTTPS, gzip | ${pull_t} s | $(mib "$pull_m") | $(mb "$pull_w") | – |"
echo "$peer_row"
echo
echo "- gzip within 1.25x of pigz -6: $(met "$gz_t" "$(awk -v p="$pigz_t" 'BEGIN{print 1.25*p}')")"
echo "- gzip within 0.5x of the materialising pipeline: $(met "$gz_t" "$(awk -v p="$mat_t" 'BEGIN{print 0.5*p}')")"
echo "- zstd within 1.25x of gzip -dc + zstd -3 -T0: $(met "$zs_t" "$(awk -v p="$floor_zs" 'BEGIN{print 1.25*p}')")"
if [[ -n ${peer_t:-} ]]; then
  echo "- pull within 0.5x of initramfs-builder: $(ratio "$pull_t" "$peer_t"), $(met "$pull_t" "$(awk -v p="$peer_t" 'BEGIN{print 0.5*p}')")"
fi
max_kib=$(((64 * 1048576 + compressed) / 1024))
for row in "-c none:$none_m" "-c gzip:$gz_m" "-c zstd:$zs_m" "pull:$pull_m"; do
  echo "- peak RSS $(mib "${row#*:}") (${row%%:*}) under 64 MiB + $(mb "$compressed"): $(met "${row#*:}" "$max_kib")"
done
echo "- disk: wrote $(mb "$written") for a $(mb "$out_size") output; $leftovers files left in TMPDIR: $(
  [[ $leftovers == 0 ]] && awk -v w="$written" -v o="$out_size" 'BEGIN{exit !(w <= o + 65536)}' && echo met || echo "NOT met")"
