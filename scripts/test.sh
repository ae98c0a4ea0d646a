#!/usr/bin/env bash
# Set up on a fresh machine and run the whole test suite (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MEDSEG_VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check torch==2.13.0
"$VENV/bin/pip" install -q --disable-pip-version-check -e '.[test]'
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
