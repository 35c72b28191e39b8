#!/usr/bin/env bash
# The README's test command: set up .venv if needed, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${JETZIP_SETUP_DONE:-}" != 1 ]; then bash .ci/setup; fi
# Test files run on JETZIP_TEST_WORKERS processes (default 2, CI's cores; 1: one process), a
# file's tests in one process (their module fixtures are made once).
workers="${JETZIP_TEST_WORKERS:-2}"
if [ "$workers" -gt 1 ] && .venv/bin/python -c "import xdist" 2>/dev/null; then
  exec .venv/bin/python -m pytest -n "$workers" --dist loadfile "$@"
fi
exec .venv/bin/python -m pytest "$@"
