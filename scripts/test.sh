#!/usr/bin/env bash
# Runs every test of the project: the README's test command.
# One build profile (release) for everything, so the kernel tests run fast
# and nothing is compiled twice.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --workspace --all-targets "$@"
