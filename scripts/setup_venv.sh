#!/usr/bin/env bash
# Create (or refresh) the main venv: PyTorch 2.13 (CPU) and MedSeg, editable, with the given extras.
# Usage: bash scripts/setup_venv.sh [EXTRAS]   e.g.  bash scripts/setup_venv.sh test,oracle
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MEDSEG_VENV:-.venv}
PIP=(-q --disable-pip-version-check)
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install "${PIP[@]}" torch==2.13.0
# constraints keep dependencies (nnunetv2's torchvision) from replacing torch with a multi-GB CUDA build
"$VENV/bin/pip" install "${PIP[@]}" -c scripts/constraints.txt -e ".${1:+[$1]}"
