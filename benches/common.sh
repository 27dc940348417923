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
