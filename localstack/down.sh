#!/usr/bin/env bash
# Stops the LocalStack started by up.sh.
set -euo pipefail
state=$(cd "$(dirname "$0")" && pwd)/.state
if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
  kill "$(cat "$state/pid")"
  for _ in $(seq 1 40); do kill -0 "$(cat "$state/pid")" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$(cat "$state/pid")" 2>/dev/null || true
fi
rm -f "$state/pid"
