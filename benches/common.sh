# Shared by the benchmark scripts: source it after setting $runs and $work.

# best [--before CMD] CMD...: best of $runs as "seconds peak-KiB written-bytes";
# CMD runs again before each timed run, untimed (cleanup).
best() {
  local before=: best_t= best_m= best_w= t m o report
  if [[ $1 == --before ]]; then before=$2; shift 2; fi
  report=$(mktemp)
  for _ in $(seq "$runs"); do
    sh -c "$before"
    sync
    /usr/bin/time -o "$report" -f '%e %M %O' "$@" >/dev/null 2>&1 ||
      { echo "failed: $*" >&2; tail -n 5 "$work/last.log" 2>/dev/null >&2; return 1; }
    read -r t m o <"$report"
    if [[ -z $best_t ]] || awk "BEGIN{exit !($t < $best_t)}"; then
      best_t=$t best_m=$m best_w=$((o * 512))
    fi
  done
  rm -f "$report"
  echo "$best_t $best_m $best_w"
}

# start_registry [TLS_DIR]: runs docker-registry on a free loopback port
# (HTTPS with TLS_DIR/server.{crt,key} when given), sets $port, stops it on
# exit, and returns once /v2/ answers.
start_registry() {
  local tls=${1:-} scheme=http ca=()
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$work/registry"
  cat >"$work/registry/config.yml" <<CONF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry/storage
http:
  addr: 127.0.0.1:$port
CONF
  if [[ -n $tls ]]; then
    printf '  tls:\n    certificate: %s\n    key: %s\n' "$tls/server.crt" "$tls/server.key" \
      >>"$work/registry/config.yml"
    scheme=https ca=(--cacert "$tls/ca.crt")
  fi
  docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
  registry=$!
  trap 'kill $registry 2>/dev/null || true' EXIT
  for _ in $(seq 100); do
    curl -fs "${ca[@]}" "$scheme://127.0.0.1:$port/v2/" >/dev/null && return 0
    sleep 0.1
  done
  echo "docker-registry did not start; see $work/registry/log" >&2
  return 1
}
