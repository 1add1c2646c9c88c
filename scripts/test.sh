#!/usr/bin/env bash
# Install everything the tests need, then lint and run the whole suite on the tiny backbone.
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
PYTHON="${PYTHON:-python3}"

"$PYTHON" -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt

# Browser tests drive Debian's Chromium with Playwright (never `playwright install`).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium not found and not root: the browser test will be skipped" >&2
  fi
fi

"$PYTHON" -m ruff check .
"$PYTHON" -m ruff format --check .
# One pytest-xdist worker per core (at most 2), whole test files per worker (module fixtures built once).
WORKERS="${HUB_TEST_WORKERS:-$("$PYTHON" -c 'import os; print(max(1, min(2, os.cpu_count() or 1)))')}"
"$PYTHON" -m pytest -q -n "$WORKERS" --dist loadfile "$@"
