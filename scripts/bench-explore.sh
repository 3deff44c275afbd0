#!/usr/bin/env bash
# The explorer's tile latencies (targets: a cold 256-px tile at the default
# view's depth served in <= 50 ms, a cached one in <= 5 ms), measured with
# curl over HTTP on 127.0.0.1: 32 tiles of zoom 10 around the default view
# (max_iter 2000, the default job's budget), each asked for once cold and
# once cached. Embedded (rendered on this machine's cores), then through
# LocalStack (rendered by 2 worker pollers as one-tile jobs; then the same
# tiles from the bucket by a second explorer; then its cache).
#
#   scripts/bench-explore.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# --all-targets: the same feature resolution as the test command, so nothing rebuilds.
cargo build --release --quiet --workspace --all-targets --features mandel-orchestrate/video
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# Starts an explorer with the given arguments; prints its URL.
explorer() {
  local out="$work/url-$RANDOM"
  "$bin/mandel-explore" --port 0 "$@" >"$out" 2>/dev/null &
  pids+=($!)
  until [ -s "$out" ]; do sleep 0.05; done
  head -1 "$out"
}

tiles=()
for y in 482 483 484 485; do
  for x in $(seq 448 455); do tiles+=("10/$x/$y"); done
done

# Fetches every tile once from the explorer at $1 (with the query $2, if
# any); prints "source ms" per tile: where it came from, curl's total time.
fetch_all() {
  for t in "${tiles[@]}"; do
    curl -s -o /dev/null -D "$work/head" -w "%{time_total}\n" "$1tiles/$t.png${2:-}" >"$work/time"
    printf "%s %.2f\n" "$(grep -i '^x-mandel-tile' "$work/head" | tr -d '\r' | cut -d' ' -f2)" \
      "$(awk '{ print $1 * 1000 }' "$work/time")"
  done
}

# Median, 90th percentile and max of the times read from stdin.
summary() {
  sort -n | awk '{ a[NR] = $1 } END {
    printf "median %.1f ms, p90 %.1f ms, max %.1f ms (%d tiles)", a[int((NR + 1) / 2)], a[int(NR * 0.9 + 0.5)], a[NR], NR }'
}

report() { # label, then "source ms" lines on stdin
  local lines
  lines=$(cat)
  printf "%-42s %s  [%s]\n" "$1" "$(cut -d' ' -f2 <<<"$lines" | summary)" \
    "$(cut -d' ' -f1 <<<"$lines" | sort | uniq -c | awk '{ printf "%s%s x%s", sep, $2, $1; sep = ", " }')"
}

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
echo "# mandel-explore tile latencies ($(nproc) cores, $cpu; $(date -u +%F))"
url=$(explorer --cache "$work/local")
fetch_all "$url" | report "embedded, cold (rendered here)"
fetch_all "$url" | report "embedded, cached"

# Deep tiles at 2^332 (about 1e100) on the path to e1000, budget 10,000
# (issue 24's target: 200 ms a 256-px tile once its reference exists):
# the first tile computes its region's orbit; then 15 more tiles of the
# same region, one request at a time, cold, then cached.
saved=("${tiles[@]}")
mapfile -t tiles < <("$bin/mandel-bench" deep-tiles locations/e1000.kfr 332 --tiles 16 --paths)
url=$(explorer --cache "$work/deep")
first=("${tiles[0]}")
rest=("${tiles[@]:1}")
tiles=("${first[@]}")
fetch_all "$url" "?iter=10000" | report "deep 1e100, the region's first (its orbit)"
tiles=("${rest[@]}")
fetch_all "$url" "?iter=10000" | report "deep 1e100, cold, its orbit kept"
fetch_all "$url" "?iter=10000" | report "deep 1e100, cached"
tiles=("${saved[@]}")

eval "$(localstack/up.sh)"
for _ in 1 2; do
  "$bin/mandel-worker" --poll --bucket "$MANDEL_BUCKET" >/dev/null 2>&1 &
  pids+=($!)
done
sleep 1
# A fresh budget, so the bucket has none of these tiles yet.
iter=$((2000 + RANDOM % 1000))
url=$(explorer --cache "$work/cloud1" --bucket "$MANDEL_BUCKET")
fetch_all "$url" "?iter=$iter" | report "LocalStack, cold (2 worker pollers)"
url=$(explorer --cache "$work/cloud2" --bucket "$MANDEL_BUCKET")
fetch_all "$url" "?iter=$iter" | report "LocalStack, from the bucket"
fetch_all "$url" "?iter=$iter" | report "LocalStack, cached"
