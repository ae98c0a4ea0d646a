#!/usr/bin/env bash
# Create the SEPARATE venv that runs the bundle inside real (headless) ChimeraX:
# the PyPI wheel chimerax==0.1.71 (ChimeraX core 1.7.1) needs numpy 1.26 and pydicom<3,
# so it can never share the dev venv (numpy 2). Idempotent: a second run only refreshes
# the bundle install. Usage: bash scripts/setup_chimerax_env.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-${MEDSEG_CHIMERAX_VENV:-.venv-chimerax}}
PIP=(-q --disable-pip-version-check)

# OSMesa for offscreen rendering (PNG pictures without a display).
if ! ldconfig -p 2>/dev/null | grep -q 'libOSMesa\.so'; then
    bash scripts/install_debian_package.sh libosmesa6 "offscreen rendering will be unavailable"
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
# (never `import chimerax.*` here: the wheel's own chimerax/__init__.py is broken)
HAVE_CX='import importlib.util as u, pathlib as p; s = u.find_spec("chimerax"); assert s and (p.Path(s.origin).parent / "map_data").is_dir()'
if ! "$VENV/bin/python" -c "$HAVE_CX" 2>/dev/null ||
   ! "$VENV/bin/python" -c 'import torch, OpenGL, PIL, pytest, pkg_resources, Cython, tomli, lxml, matplotlib' 2>/dev/null; then
    # What ChimeraX's nogui/volume/command path really imports, plus the engine's deps.
    "$VENV/bin/pip" install "${PIP[@]}" numpy==1.26.4 'pydicom<3' torch==2.13.0 \
        'scipy>=1.10' 'nibabel>=5' 'SimpleITK>=2.2' requests \
        appdirs sortedcontainers packaging filelock pkginfo tinyarray grako \
        PyOpenGL==3.1.7 Pillow 'pytest>=7' wheel Cython tomli lxml 'matplotlib>=3.5'
    # ChimeraX's toolshed needs pkg_resources and its bundle builder an old setuptools; torch's
    # metadata asks for a newer one it does not need at run time, so this goes in on its own.
    "$VENV/bin/pip" install "${PIP[@]}" 'setuptools>=64,<69' 2>&1 | grep -v -i "incompatible\|dependency conflicts\|requires setuptools" || true
    "$VENV/bin/python" -c 'import pkg_resources' 2>/dev/null ||
        { echo "error: setuptools with pkg_resources did not install" >&2; exit 1; }
    # The wheel's ~50 exact pins do not build here; it is yanked but installs with an exact pin.
    "$VENV/bin/pip" install "${PIP[@]}" --no-deps chimerax==0.1.71 2>&1 | grep -v -i yanked || true
    "$VENV/bin/python" -c "$HAVE_CX" ||
        { echo "error: the chimerax wheel did not install" >&2; exit 1; }
fi
# DICOM decoders and DICOM-SEG (the "dicom" extra), held to ChimeraX's numpy and pydicom
if ! "$VENV/bin/python" -c 'import highdicom, pylibjpeg' 2>/dev/null; then
    "$VENV/bin/pip" install "${PIP[@]}" -c <(printf 'numpy==1.26.4\npydicom<3\n') \
        'highdicom>=0.22' 'pylibjpeg>=2' 'pylibjpeg-openjpeg>=2' 'pylibjpeg-rle>=2'
fi

# The bundle itself, editable and without deps (its ChimeraX-Core requirement cannot be met
# by the PyPI distribution named "ChimeraX"); ChimeraX's toolshed finds it by its classifiers.
"$VENV/bin/pip" install "${PIP[@]}" --no-deps --no-build-isolation -e .
echo "ChimeraX test environment ready: $VENV"
