#!/usr/bin/env bash
# The CUDA path in one run of at most 5 minutes: parity on cuda against the CPU, a BraTS-size case with
# nnU-Net's default network (5 folds x 8 mirrorings: full, adaptive, nnunetv2's predictor), peak GPU memory.
# Usage, from a copy of the repository:   bash benchmarks/gpu_check.sh [--dry-run]
#   --dry-run: the same steps on the CPU, small, to check the script where no GPU is.
# Python: $MEDSEG_PYTHON, else .venv/bin/python, else python3. It needs torch (a CUDA build), numpy, scipy,
# nibabel, SimpleITK (and nnunetv2 for the side-by-side timing). What is missing is said, then it stops;
# MedSeg itself is used from src/ when it is not installed.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
for arg in "$@"; do [ "$arg" = "--dry-run" ] && DRY=1; done

PY=""
for candidate in "${MEDSEG_PYTHON:-}" .venv/bin/python "$(command -v python3 || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c "import torch" 2>/dev/null; then
        PY=$candidate; break
    fi
done
if [ -z "$PY" ]; then
    echo "gpu_check: no Python with torch found (tried \$MEDSEG_PYTHON, .venv/bin/python, python3)."
    echo "  Make one with: MEDSEG_VENV=.venv bash scripts/setup_venv.sh test,oracle   (needs the package index;"
    echo "  that script installs the CPU torch 2.13: on a GPU machine install a CUDA build of torch 2.13 instead)."
    exit 2
fi
echo "gpu_check: python $PY"

# MedSeg from this checkout when it is not installed: src/ is the package chimerax.medseg
if ! "$PY" -c "import chimerax.medseg" 2>/dev/null; then
    SHIM=$(mktemp -d)/shim
    mkdir -p "$SHIM/chimerax" && ln -s "$PWD/src" "$SHIM/chimerax/medseg"
    export PYTHONPATH="$SHIM${PYTHONPATH:+:$PYTHONPATH}"
    echo "gpu_check: chimerax.medseg not installed; using src/ through $SHIM"
fi

MISSING=$("$PY" - <<'EOF'
import importlib
need = ["numpy", "scipy", "nibabel", "SimpleITK", "chimerax.medseg"]
print(" ".join(n for n in need if importlib.util.find_spec(n.split(".")[0]) is None
               or (n == "chimerax.medseg" and importlib.util.find_spec(n) is None)))
EOF
)
if [ -n "$MISSING" ]; then
    echo "gpu_check: missing Python packages: $MISSING"
    echo "  Install them into $PY's environment (pip install -e . with scripts/constraints.txt), or carry a venv."
    exit 2
fi
"$PY" -c "import nnunetv2" 2>/dev/null || echo "gpu_check: nnunetv2 missing: the nnU-Net side of (b) is skipped" \
    "(pip install nnunetv2==2.8.1 with scripts/constraints.txt)"
if [ "$DRY" = 0 ]; then
    CUDA=$("$PY" -c "import torch; print(torch.version.cuda or 'none', torch.cuda.is_available())")
    echo "gpu_check: torch CUDA build / GPU usable: $CUDA"
    case "$CUDA" in
        *True) ;;
        none*) echo "gpu_check: this torch is a CPU build: install a CUDA build of torch (or use --dry-run)."; exit 2 ;;
        *) echo "gpu_check: torch has CUDA but sees no GPU (driver? CUDA_VISIBLE_DEVICES?)"; nvidia-smi 2>&1 | head -5
           exit 2 ;;
    esac
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
fi
# the 5-minute bound is for the GPU run; a dry run on a shared CPU may take longer
[ "$DRY" = 1 ] && exec "$PY" benchmarks/gpu_check.py "$@"
exec timeout 290 "$PY" benchmarks/gpu_check.py "$@"
