#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver for the browser tests (the
# report page; tests/browser.rs) if they are not there, and prints the
# environment that names them, for `eval "$(scripts/browser.sh)"`.
# Progress goes to stderr; only the exports go to stdout.
set -euo pipefail
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        echo "browser.sh: chromium and chromedriver are missing; run as root to install them" >&2
        exit 1
    fi
    echo "browser.sh: installing Debian's chromium and chromium-driver" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2
fi
echo "export MANDEL_CHROMIUM=$(command -v chromium)"
echo "export MANDEL_CHROMEDRIVER=$(command -v chromedriver)"
