#!/usr/bin/env bash
# Runs the benchmark: installs numpy for the baseline into .venv-bench on
# first use, builds in the release profile, and prints the numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-bench/bin/python ]; then
  python3 -m venv .venv-bench
  .venv-bench/bin/pip install --quiet 'numpy==2.4.*'
fi
cargo build --release --workspace --all-targets --features mandel-orchestrate/video
cargo run --release -p mandel-bench -- --python .venv-bench/bin/python "$@"
# The estimator's error on four views (docs/performance.md#estimator).
target/release/mandel-bench estimator

# Peak memory (VmHWM) of whole embedded renders: the default job and the
# 64×64-tile, 16384×16384 job. The orchestrator prints it in its summary.
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "== peak memory, embedded"
for job in "default:" "large:--viewport=-2,0.5,-1.25,1.25 --tiles-per-side 64 --max-iter 100"; do
  name=${job%%:*}; args=${job#*:}
  # shellcheck disable=SC2086
  printf '%s: ' "$name"; target/release/mandel-orchestrate $args --out "$out/$name.png" | sed 's/; wrote.*//'
done
