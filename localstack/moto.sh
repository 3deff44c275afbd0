#!/usr/bin/env bash
# Installs moto (S3, SQS and IAM, server mode) into localstack/.moto-venv
# from the pinned lock on first use, and prints the export that the IAM
# end-to-end tests read:
#   eval "$(localstack/moto.sh)"
# The tests start their own server on a free port; nothing runs here.
# moto enforces IAM policies (LocalStack's IAM enforcement is a paid
# feature), so tests/iam_e2e.rs runs against it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=$here/.moto-venv
if ! { [ -x "$venv/bin/moto_server" ] && cmp -s "$here/moto-requirements.lock" "$venv/.installed.lock"; }; then
  echo "localstack/moto.sh: installing moto into $venv (first use)" >&2
  rm -rf "$venv"
  "${MANDEL_PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'uv==0.13.9'
  "$venv/bin/uv" pip sync --quiet --python "$venv/bin/python" "$here/moto-requirements.lock"
  cp "$here/moto-requirements.lock" "$venv/.installed.lock"
fi
echo "export MANDEL_MOTO_SERVER=\"$venv/bin/moto_server\""
