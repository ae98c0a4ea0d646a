#!/usr/bin/env bash
# The README's main job: set up, then segment the embedded example case with the embedded model
# (no download). Writes out/example_labels.nii.gz and, where the ChimeraX wheel installs,
# a picture rendered by headless ChimeraX (out/example_segmented.png).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MEDSEG_VENV:-.venv}
bash scripts/setup_venv.sh
mkdir -p out
if bash scripts/setup_chimerax_env.sh .venv-chimerax >out/chimerax_setup.log 2>&1; then
    .venv-chimerax/bin/python scripts/render_example.py --output out
else
    echo "(the ChimeraX wheel could not be set up, see out/chimerax_setup.log: using the command line only)"
    "$VENV/bin/medseg" demo --output out
fi
