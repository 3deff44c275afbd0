#!/usr/bin/env bash
# Runs the benchmark: installs numpy for the baseline into .venv-bench on
# first use, builds in the release profile, and prints the numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-bench/bin/python ]; then
  python3 -m venv .venv-bench
  .venv-bench/bin/pip install --quiet 'numpy==2.4.*'
fi
cargo run --release -p mandel-bench -- --python .venv-bench/bin/python "$@"
