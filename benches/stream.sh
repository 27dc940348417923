#!/usr/bin/env bash
# A large `docker save` read from a file, from a pipe and from the Engine
# API: time, peak RSS, bytes written to the file system, and the bytes held
# in memory for a stream. Starts a private dockerd (vfs storage, own socket
# and data root) and stops it on exit; needs root, docker.io, busybox-static.
#
# usage: benches/stream.sh [DIR...]   (default: /usr/lib/x86_64-linux-gnu /usr/bin)
#        RUNS=3 WORK=/var/tmp/x benches/stream.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
work=${WORK:-$(mktemp -d /tmp/stream-bench.XXXXXX)}
mkdir -p "$work"
source benches/common.sh
dirs=("$@")
((${#dirs[@]})) || dirs=(/usr/lib/x86_64-linux-gnu /usr/bin)

cargo build --release -q
bin=$PWD/target/release/initramfs-stream

engine=$work/engine
mkdir -p "$engine"
TMPDIR=$engine dockerd --storage-driver=vfs --data-root="$engine/root" --exec-root="$engine/exec" \
  --pidfile="$engine/pid" --host="unix://$engine/sock" \
  --iptables=false --ip6tables=false --bridge=none >"$engine/log" 2>&1 &
dockerd_pid=$!
cleanup() {
  kill "$dockerd_pid" 2>/dev/null && wait "$dockerd_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
export DOCKER_HOST=unix://$engine/sock DOCKER_CONFIG=$engine/config
for _ in $(seq 300); do docker version >/dev/null 2>&1 && break; sleep 0.2; done

# One layer per directory, hardlinked into the build context (no copy).
ctx=$work/ctx
mkdir -p "$ctx"
cp "$(readlink -f "$(command -v busybox)")" "$ctx/busybox"
{
  echo "FROM scratch"
  echo "COPY busybox /bin/busybox"
  i=0
  for d in "${dirs[@]}"; do
    cp -al "$d" "$ctx/d$i" 2>/dev/null || cp -a "$d" "$ctx/d$i"
    echo "COPY d$i /data/d$i"
    i=$((i + 1))
  done
  echo 'RUN ["/bin/busybox", "rm", "-rf", "/data/d0/perl5"]'
} >"$ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t bench-stream:1 "$ctx" >/dev/null
rm -rf "$ctx"
docker save -o "$work/image.tar" bench-stream:1
size=$(stat -c %s "$work/image.tar")

held=$(docker save bench-stream:1 | "$bin" docker-archive:- -c none --no-init -v 2>&1 >/dev/null |
  sed -n 's/.*held=\([0-9]*\).*/\1/p')

mib() { awk "BEGIN{printf \"%.0f MiB\", $1 / 1048576}"; }
row() { # name seconds peak-KiB written
  printf '| %s | %s s | %s | %s |\n' "$1" "$2" "$(mib $(($3 * 1024)))" "$(mib "$4")"
}
echo "docker save: $(mib "$size") in $(docker image inspect -f '{{len .RootFS.Layers}}' bench-stream:1) layers;" \
  "held in memory from a pipe: $(mib "$held") ($(awk "BEGIN{printf \"%.0f\", 100 * $held / $size}")%)"
echo "best of $runs; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo '| what | time | peak RSS | written |'
echo '| --- | --- | --- | --- |'
read -r t m w < <(best sh -c 'docker save bench-stream:1 >/dev/null')
row '`docker save > /dev/null` alone' "$t" "$m" "$w"
read -r t m w < <(best "$bin" "docker-archive:$work/image.tar" -c none --no-init -q)
row '`docker-archive:FILE` (seeks)' "$t" "$m" "$w"
read -r t m w < <(best "$bin" "docker-archive:$work/image.tar" -c zstd --no-init -q)
row '`docker-archive:FILE -c zstd`' "$t" "$m" "$w"
# The tool alone is timed inside the pipe: its RSS, not docker's.
best_pipe() {
  local best_t= best_m= best_w= t m o
  for _ in $(seq "$runs"); do
    docker save bench-stream:1 |
      /usr/bin/time -o "$work/pipe" -f '%e %M %O' "$bin" docker-archive:- "$@" >/dev/null
    read -r t m o <"$work/pipe"
    if [[ -z $best_t ]] || awk "BEGIN{exit !($t < $best_t)}"; then
      best_t=$t best_m=$m best_w=$((o * 512))
    fi
  done
  echo "$best_t $best_m $best_w"
}
read -r t m w < <(best_pipe -c none --no-init -q)
row '`docker save | docker-archive:-`' "$t" "$m" "$w"
read -r t m w < <(best_pipe -c zstd --no-init -q)
row '`docker save | docker-archive:- -c zstd`' "$t" "$m" "$w"
read -r t m w < <(best "$bin" docker-daemon:bench-stream:1 -c none --no-init -q)
row '`docker-daemon:`' "$t" "$m" "$w"
read -r t m w < <(best "$bin" docker-daemon:bench-stream:1 -c none --no-init -q --memory-limit 0)
row '`docker-daemon:` `--memory-limit 0` (exported again)' "$t" "$m" "$w"
