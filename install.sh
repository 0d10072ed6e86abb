#!/usr/bin/env bash
# Create .venv and install n3f with its test dependencies.
# Where a site pins torch (e.g. a pip constraints file), pip honours it; on a
# CUDA machine pip's default torch wheel includes CUDA support.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
echo "n3f installed in $(pwd)/.venv"
