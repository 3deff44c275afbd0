#!/usr/bin/env bash
# Deep zoom side by side (docs/performance.md, "Deep zoom"): mandel's
# perturbation (`mandel-bench deep`) and Fractalshades 1.2.1's on the same
# published locations, sizes and iterations, each also on the 64² test grid
# against brute force (the agreement both are compared at).
#
# Fractalshades builds from source against Debian's MPFR and MPC and needs
# numpy < 2.4; it goes into .venv-fractalshades on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-fractalshades
if [ ! -x "$venv/bin/python" ]; then
    if ! dpkg -s libmpfr-dev libmpc-dev >/dev/null 2>&1; then
        apt-get update && apt-get install -y libmpfr-dev libmpc-dev
    fi
    python3 -m venv "$venv"
    "$venv/bin/pip" install "numpy<2.4" "fractalshades==1.2.1"
fi
cargo build --release -p mandel-bench
grids=crates/core/tests/data/deep
for loc in 1e14:e14 5e113:5e113 e1000:e1000; do
    kfr=locations/${loc%%:*}.kfr grid=$grids/${loc##*:}.json
    target/release/mandel-bench deep "$kfr" 64 --truth "$grid"
    for eps in 1e-6 1e-10 off; do
        "$venv/bin/python" tools/fractalshades_bench.py "$kfr" 64 "$eps" "$grid" | grep -E "^(warm|fractalshades|agreement)"
    done
done
# Speed at a size worth timing.
target/release/mandel-bench deep locations/5e113.kfr 512
for eps in 1e-10 off; do
    "$venv/bin/python" tools/fractalshades_bench.py locations/5e113.kfr 512 "$eps" | grep -E "^(warm|fractalshades)"
done
target/release/mandel-bench deep locations/deep-mandelbrot-set-023.kfr 4096
