#!/usr/bin/env bash
# The README's test command: set everything up on a fresh machine, then run the whole suite.
#  - .venv: torch 2.13.0 (CPU), MedSeg with its test extras and the real nnU-Net v2 (the oracle),
#    numpy 2 / pydicom 3: everything but the ChimeraX tests.
#  - .venv-chimerax: the ChimeraX 1.7 wheel with numpy 1.26 / pydicom 2 (scripts/setup_chimerax_env.sh):
#    the tests in tests/chimerax_ui, headless.
#  - scripts/lint.sh: ruff and mypy over src/.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MEDSEG_VENV:-.venv}
bash scripts/setup_venv.sh test,oracle
"$VENV/bin/python" scripts/fetch_dicom_test_data.py
bash scripts/setup_chimerax_env.sh .venv-chimerax
# Debian's chromium, headless, for the panel page's test (tests/chimerax_ui/test_panel_page.py)
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
    bash scripts/install_debian_package.sh chromium "the panel page's test will fail"
fi

status=0
bash scripts/lint.sh || status=$?
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests --ignore=tests/chimerax_ui "$@" || status=$?
.venv-chimerax/bin/python -m pytest -q -p no:cacheprovider tests/chimerax_ui "$@" || status=$?
exit $status
