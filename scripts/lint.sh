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
# no import cycles among our modules (function-level imports count); the tool sits in ../shared
cycles=../shared/tools/import_cycles.py
if [ -f "$cycles" ]; then
    python3 "$cycles" src chimerax.medseg | tail -n 1 | tee /dev/stderr | grep -q "^0 module cycle(s) and 0 package cycle(s)" || status=1
fi
[ $status = 0 ] && echo "lint: ruff, mypy and import cycles clean"
exit $status
