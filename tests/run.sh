#!/usr/bin/env bash
# The README's test command: set up .venv if needed, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
exec .venv/bin/python -m pytest "$@"
