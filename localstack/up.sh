#!/usr/bin/env bash
# Starts LocalStack (S3 and SQS only, host mode, no Docker) on 127.0.0.1:4566,
# installing it from the pinned lock on first use, and creates mandel's
# resources under the names Terraform uses. Prints `export` lines:
#   eval "$(localstack/up.sh)"
# Idempotent: if LocalStack already answers, only the resources are ensured.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
state=$here/.state
venv=$here/.venv
endpoint=http://127.0.0.1:4566
log() { echo "localstack/up.sh: $*" >&2; }

find_python() {
  for candidate in "${MANDEL_PYTHON313:-}" "$(command -v pyenv >/dev/null && echo "$(pyenv root)/versions/3.13.0/bin/python3.13")" \
    "$(command -v python3.13 || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then echo "$candidate"; return; fi
  done
  log "Python 3.13 not found (set MANDEL_PYTHON313 to its path)"; exit 1
}

install() {
  if [ -x "$venv/bin/python" ] && cmp -s "$here/requirements.lock" "$venv/.installed.lock"; then return; fi
  log "installing LocalStack into $venv (first use)"
  rm -rf "$venv"
  "$(find_python)" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'uv==0.13.9'
  "$venv/bin/uv" pip sync --quiet --python "$venv/bin/python" "$here/requirements.lock"
  cp "$here/requirements.lock" "$venv/.installed.lock"
}

healthy() {
  curl -fsS "$endpoint/_localstack/health" 2>/dev/null | grep -q '"s3": "\(running\|available\)"' &&
    curl -fsS "$endpoint/_localstack/health" 2>/dev/null | grep -q '"sqs": "\(running\|available\)"'
}

start() {
  mkdir -p "$state"
  log "starting LocalStack on $endpoint (log: $state/localstack.log)"
  (
    cd "$state"
    GATEWAY_LISTEN=127.0.0.1:4566 LOCALSTACK_HOST=127.0.0.1:4566 SERVICES=s3,sqs LOCALSTACK_VOLUME_DIR="$state/volume" \
      SQS_ENDPOINT_STRATEGY=path EAGER_SERVICE_LOADING=1 \
      nohup "$venv/bin/python" -m localstack.runtime.main >"$state/localstack.log" 2>&1 &
    echo $! >"$state/pid"
  )
  for _ in $(seq 1 120); do
    if healthy; then return; fi
    if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      log "LocalStack exited; last log lines:"; tail -20 "$state/localstack.log" >&2; exit 1
    fi
    sleep 0.5
  done
  log "LocalStack did not become healthy in 60 s"; tail -20 "$state/localstack.log" >&2; exit 1
}

install
healthy || start

export AWS_ENDPOINT_URL=$endpoint AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
export AWS_REGION=us-east-1 MANDEL_BUCKET=${MANDEL_BUCKET:-mandel-local}
# Short visibility timeouts and receive counts: recovery tests finish in
# seconds. Terraform keeps production values.
"$venv/bin/python" "$here/bootstrap.py" >&2

cat <<EXPORTS
export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL
export AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
export AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export AWS_REGION=$AWS_REGION
export AWS_DEFAULT_REGION=$AWS_DEFAULT_REGION
export MANDEL_BUCKET=$MANDEL_BUCKET
EXPORTS
