#!/usr/bin/env bash
# Install Debian's chromium for tests/test_html_report.py (the HTML report opened in a headless browser).
# Idempotent: does nothing when a chromium is already on PATH. Needs root (or passwordless sudo).
set -euo pipefail
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    exec sudo -n "$0" "$@"
  fi
  echo "browser_up: must run as root to install chromium" >&2; exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
chromium --version >&2
