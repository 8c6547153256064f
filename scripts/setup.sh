#!/usr/bin/env bash
# Create .venv and install the package with every extra (app, attacks, dev). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[app,attacks,dev,pretrained]"
echo "deepfake-detection installed in $(pwd)/.venv"
