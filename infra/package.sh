#!/usr/bin/env bash
# Builds the two functions as Lambda zips with cargo-lambda, where Terraform
# looks for them: target/lambda/<binary>/bootstrap.zip. x86_64 by default;
# `--arm64` for Graviton (needs the aarch64-unknown-linux-gnu Rust target:
# `rustup target add aarch64-unknown-linux-gnu`). Unchanged code gives
# byte-identical zips, so `terraform apply` redeploys only what changed.
#
#   infra/package.sh [--arm64]
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(infra/tools.sh)"
arch=()
case "${1:-}" in
  "") ;;
  --arm64) arch=(--arm64) ;;
  *) echo "usage: infra/package.sh [--arm64]" >&2; exit 2 ;;
esac
cargo lambda build --release --output-format zip "${arch[@]}" \
  --package mandel-worker --package mandel-stitch
for f in mandel-worker mandel-stitch; do
  sha256sum "target/lambda/$f/bootstrap.zip"
done
