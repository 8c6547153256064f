#!/usr/bin/env bash
# Set up, lint and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pip install -q -e ".[scale]"  # the Ray runner is tested too
# The browser test drives Debian's Chromium (Playwright's own browser download needs the
# internet); install it where we can, otherwise that one test skips.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || echo "note: could not install chromium; the browser test will skip" >&2
fi
.venv/bin/ruff check .
.venv/bin/python -m pytest -q "$@"
