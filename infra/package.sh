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
# The zips go to target/lambda of this repository (where Terraform looks)
# even when CARGO_TARGET_DIR puts the build elsewhere.
cargo lambda build --release --output-format zip "${arch[@]}" \
  --lambda-dir target/lambda --package mandel-worker --package mandel-stitch
# cargo-lambda stamps the zip entry with the build time; pin it, so a
# rebuild of unchanged code yields the same zip and the same
# source_code_hash in Terraform.
for f in mandel-worker mandel-stitch; do
  python3 - "target/lambda/$f/bootstrap.zip" <<'PY'
import sys, zipfile
path = sys.argv[1]
with zipfile.ZipFile(path) as z:
    entries = [(i.filename, z.read(i)) for i in z.infolist()]
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
    for name, data in entries:
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o100755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, data, compresslevel=6)
PY
  sha256sum "target/lambda/$f/bootstrap.zip"
done
