#!/usr/bin/env bash
# The pipeline benchmark (target: within 1.5x of embedded): the default job on LocalStack
# through 2 worker pollers and 1 stitch poller, against the embedded mode
# with 2 workers, on the same machine. Prints each run's wall time, the
# medians and their ratio, the CPU time LocalStack itself used, and the
# requests LocalStack served per job, by operation (from its log, which has
# a line per request).
#
#   scripts/bench-localstack.sh [runs]     (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
eval "$(localstack/up.sh)"
# --all-targets: the same feature resolution as the test command, so nothing rebuilds.
cargo build --release --quiet --workspace --all-targets --features mandel-orchestrate/video
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in 1 2; do
  "$bin/mandel-worker" --poll --bucket "$MANDEL_BUCKET" >/dev/null 2>&1 &
  pids+=($!)
done
"$bin/mandel-stitch" --poll --bucket "$MANDEL_BUCKET" >/dev/null 2>&1 &
pids+=($!)
sleep 1

# Seconds of CPU a process has used (utime + stime).
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
wall() { # prints the wall time of one run of the command, in seconds
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  t1=$(date +%s.%N)
  printf "%.2f" "$(echo "$t1 - $t0" | bc)"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

ls_pid=$(pgrep -f localstack.runtime.main | head -1)
ls_log=localstack/.state/localstack.log
log_before=$(wc -l <"$ls_log")
ls_before=$(cpu "$ls_pid")
cloud=()
for _ in $(seq "$runs"); do
  cloud+=("$(wall "$bin/mandel-orchestrate" --bucket "$MANDEL_BUCKET" --fresh --out "$work/c.png")")
done
ls_after=$(cpu "$ls_pid")
log_after=$(wc -l <"$ls_log")
embedded=()
for _ in $(seq "$runs"); do
  embedded+=("$(wall "$bin/mandel-orchestrate" --workers 2 --out "$work/e.png")")
done
cmp -s "$work/c.png" "$work/e.png" || { echo "the two PNGs differ" >&2; exit 1; }

c=$(printf '%s\n' "${cloud[@]}" | median)
e=$(printf '%s\n' "${embedded[@]}" | median)
echo "LocalStack, 2 worker pollers: ${cloud[*]} s  (median $c s)"
echo "embedded, 2 workers:          ${embedded[*]} s  (median $e s)"
echo "ratio: $(echo "scale=2; $c / $e" | bc)x"
echo "LocalStack CPU per job: $(echo "scale=2; ($ls_after - $ls_before) / $runs" | bc) s"
echo "requests per job (LocalStack's log; pollers' idle receives included):"
sed -n "$((log_before + 1)),${log_after}p" "$ls_log" | grep -o 'AWS [a-z0-9]*\.[A-Za-z0-9]* => [0-9]*' |
  sort | uniq -c | sort -rn | awk -v runs="$runs" '{ n = $1 / runs; total += n; printf "  %7.1f %s %s %s\n", n, $3, $4, $5 } END { printf "  %7.1f in all\n", total }'
