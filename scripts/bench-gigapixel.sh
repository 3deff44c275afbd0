#!/usr/bin/env bash
# Gigapixel renders on bounded memory (the figures of docs/performance.md#gigapixel-renders): wall time and
# peak memory (VmHWM, printed by the orchestrator) of
#   - the 32768×32768 default-viewport job embedded (128×128 tiles of
#     256 px, max_iter 2000), beside the kernel alone on the same job;
#   - the million-tile job embedded (1024×1024 tiles of 32 px, whole plane,
#     max_iter 10);
#   - the stitch's peak memory for 4096², 16384² and 32768² images of
#     256-px tiles (max_iter 100) on LocalStack, from the stitch's log
#     (a fresh stitch process per job), with each job's wall time.
#
#   scripts/bench-gigapixel.sh [--no-localstack | --only-localstack]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --workspace --all-targets --features mandel-orchestrate/video
bin=target/release
# Scratch and outputs on disk, beside the repository (not a RAM-backed /tmp).
work=$(mktemp -d -p "$PWD" .bench-gigapixel.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores," \
  "kernel levels: $(grep -o -m1 -w avx512f /proc/cpuinfo || echo no-avx512)"
if [ "${1:-}" != "--only-localstack" ]; then
echo "== 32768x32768 default viewport, embedded"
"$bin/mandel-bench" kernel-only 128 256 2000
"$bin/mandel-orchestrate" --tiles-per-side 128 --tile-pixels 256 --out "$work/d.png" | sed 's/; wrote.*//'
rm -f "$work"/*.png
echo "== million tiles (1024x1024 of 32 px, whole plane, max_iter 10), embedded"
"$bin/mandel-bench" kernel-only 1024 32 10
"$bin/mandel-orchestrate" --tiles-per-side 1024 --tile-pixels 32 --max-iter 10 \
  --viewport=-2,1,-1.5,1.5 --out "$work/m.png" | sed 's/; wrote.*//'
rm -f "$work"/*.png
fi

[ "${1:-}" = "--no-localstack" ] && exit 0
eval "$(localstack/up.sh)"
echo "== stitch peak memory on LocalStack (256-px tiles, max_iter 100; 2 worker pollers)"
for _ in 1 2; do
  "$bin/mandel-worker" --poll --bucket "$MANDEL_BUCKET" >/dev/null 2>&1 &
  pids+=($!)
done
for tiles in 16 64 128; do
  log="$work/stitch-$tiles.log"
  AWS_LAMBDA_LOG_FORMAT=JSON "$bin/mandel-stitch" --poll --bucket "$MANDEL_BUCKET" >"$log" 2>&1 &
  stitch=$!
  side=$((tiles * 256))
  t0=$(date +%s.%N)
  "$bin/mandel-orchestrate" --bucket "$MANDEL_BUCKET" --fresh --timeout 3600 \
    --tiles-per-side "$tiles" --max-iter 100 --out "$work/c.png" >/dev/null 2>&1
  t1=$(date +%s.%N)
  kill "$stitch"; wait "$stitch" 2>/dev/null || true
  rss=$(grep -o '"peak_rss_mib":[0-9]*' "$log" | tail -1 | cut -d: -f2)
  took=$(grep -o '"total":"[^"]*"' "$log" | tail -1 | cut -d'"' -f4)
  printf '%sx%s (%s tiles): job %.1f s, stitch %s, stitch peak RSS %s MiB\n' \
    "$side" "$side" "$((tiles * tiles))" "$(echo "$t1 - $t0" | bc)" "$took" "$rss"
  rm -f "$work"/*.png
done
