#!/usr/bin/env bash
# Installs the deploy and check tools (cargo-lambda, which brings zig, and
# checkov) into infra/.venv from the pinned lock on first use, and prints an
# `export PATH=...` line that puts them first:
#   eval "$(infra/tools.sh)"
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=$here/.venv
if ! { [ -x "$venv/bin/cargo-lambda" ] && cmp -s "$here/requirements.lock" "$venv/.installed.lock"; }; then
  echo "infra/tools.sh: installing cargo-lambda and checkov into $venv (first use)" >&2
  rm -rf "$venv"
  "${MANDEL_PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'uv==0.13.9'
  "$venv/bin/uv" pip sync --quiet --python "$venv/bin/python" "$here/requirements.lock"
  cp "$here/requirements.lock" "$venv/.installed.lock"
fi
echo "export PATH=\"$venv/bin:\$PATH\""
