#!/usr/bin/env bash
# Runs every test of the project: the README's test command.
#
# Starts LocalStack (S3 + SQS on 127.0.0.1:4566; installed on first use by
# localstack/up.sh) because the AWS adapters are tested against it; those
# tests fail, never skip, if it is not there. One build profile (release)
# for everything, so the kernel tests run fast and nothing compiles twice.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(localstack/up.sh)"
# The end-to-end tests run the workspace's binaries, which `cargo test`
# alone does not build for packages without integration tests.
cargo build --release --workspace --bins
cargo test --release --workspace --all-targets "$@"
