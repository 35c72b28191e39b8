#!/usr/bin/env bash
# The README's test command: set up .venv if needed, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${JETZIP_SETUP_DONE:-}" != 1 ]; then bash .ci/setup; fi
exec .venv/bin/python -m pytest "$@"
