#!/usr/bin/env bash
# The whole test suite: install (idempotent), lint, generated-code check, tests.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check raftkube tests bench
bash scripts/check_generated.sh
exec .venv/bin/python -m pytest "$@"
