#!/usr/bin/env bash
# Runs every test of the project: the README's test command.
#
# Starts LocalStack (S3 + SQS on 127.0.0.1:4566; installed on first use by
# localstack/up.sh) because the AWS adapters are tested against it, and
# installs cargo-lambda and checkov (infra/tools.sh) and moto, which
# enforces IAM (localstack/moto.sh); the tests that need
# them fail, never skip, if they are not there; and Chromium for the
# browser tests (scripts/browser.sh). One build profile (release)
# for everything, so the kernel tests run fast and nothing compiles twice.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(localstack/up.sh)"
# cargo-lambda (the Lambda emulator of the Lambda end-to-end test) and
# checkov, from infra/'s pinned lock.
eval "$(infra/tools.sh)"
# moto, the local cloud that enforces IAM (tests/iam_e2e.rs starts it).
eval "$(localstack/moto.sh)"
# Debian's Chromium and ChromeDriver, for the browser tests.
eval "$(scripts/browser.sh)"
# The end-to-end tests run the workspace's binaries, which `cargo test`
# alone does not build for packages without integration tests. Building
# --all-targets (not just --bins) resolves features exactly as the test run
# does (dev-dependencies included), so the AWS SDK is compiled once.
# The video encoder (OpenH264 from source, needs a C++ compiler) is an
# opt-in feature of mandel-orchestrate; the tests make videos.
features=(--features mandel-orchestrate/video)
cargo build --release --workspace --all-targets "${features[@]}"
# The Lambda zips (target/lambda/<binary>/bootstrap.zip), whose bootstrap
# the Lambda end-to-end test runs.
infra/package.sh
cargo test --release --workspace --all-targets "${features[@]}" "$@"
