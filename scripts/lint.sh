#!/usr/bin/env bash
# Static checks over src/: ruff (style, imports, bugs) and mypy (types), both configured in
# pyproject.toml. Run by scripts/test.sh (the README's test command, and so CI).
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${MEDSEG_VENV:-.venv}
status=0
"$VENV/bin/ruff" check src || status=1
# src/ is checked as the package it is (chimerax.medseg -> src): explicit bases, no import hooks
"$VENV/bin/mypy" src --explicit-package-bases --no-incremental --hide-error-context || status=1
[ $status = 0 ] && echo "lint: ruff and mypy clean"
exit $status
