#!/usr/bin/env bash
# Create the oracle venv for nnU-Net v1 (nnunet 1.7.1). It needs numpy < 2, so it cannot share .venv
# (numpy 2 + nnunetv2). torch is installed first and pinned so nnunet's dependencies cannot replace it.
# Usage: bash scripts/setup_nnunet_v1_env.sh   (VENV defaults to .venv-nnunet1)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MEDSEG_NNUNET1_VENV:-.venv-nnunet1}
PIP=(-q --disable-pip-version-check)
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install "${PIP[@]}" torch==2.13.0
"$VENV/bin/pip" install "${PIP[@]}" -c scripts/constraints.txt nnunet==1.7.1 "numpy<2"
"$VENV/bin/python" -c "import nnunet, numpy, torch; print('nnunet ok', numpy.__version__, torch.__version__)"
