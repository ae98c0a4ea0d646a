"""The bundle as ChimeraX sees it: toolshed discovery, command dispatch, metadata, wheel build."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def test_toolshed_discovers_the_pip_installed_bundle(session):
    bundle = session.toolshed.find_bundle("ChimeraX-MedSeg", session.logger)
    assert bundle is not None and bundle.installed
    assert "segment" in [c.name for c in bundle.commands]
    assert bundle.package_name == "chimerax.medseg"


def test_segment_reaches_the_bundle_not_segmentation(session, run, log, add_volume):
    # While no "segment" command exists ChimeraX would expand "segment" to "segmentation".
    assert run("segment stop") == 0
    assert "No segmentation is running." in log.text()
    # ... and the built-in "segmentation surfaces" keeps working beside it.
    labels = np.zeros((6, 7, 8), np.uint8)
    labels[2:4, 2:5, 3:6] = 1
    vol = add_volume(labels, name="seg")
    surfaces = run(f"segmentation surfaces #{vol.id_string}")
    assert len(surfaces) == 1 and len(surfaces[0].triangles) > 0


def _build_wheel_with_chimerax_builder(session, tmp_path) -> Path:
    """What `devel build` does: ChimeraX's own builder, from pyproject.toml (the one metadata source)."""
    from chimerax.bundle_builder import BundleBuilderTOML
    src = tmp_path / "repo"
    shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    cwd = os.getcwd()
    os.chdir(src)  # the builder works in the current folder
    try:
        builder = BundleBuilderTOML.from_path(session.logger, str(src))
        builder.make_wheel()
    finally:
        os.chdir(cwd)
    return next((src / "dist").glob("ChimeraX_MedSeg-0.1.0-*.whl"))


def test_chimerax_builder_wheel_has_the_code_data_and_metadata(session, tmp_path):
    assert not (REPO / "bundle_info.xml").exists()  # one metadata source: pyproject.toml
    wheel = _build_wheel_with_chimerax_builder(session, tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "chimerax/medseg/chimerax_ui/cmd_segment.py" in names and "chimerax/medseg/chimerax_ui/volumes.py" in names
    assert "chimerax/medseg/models_manifest.json" in names
    assert any(n.startswith("chimerax/medseg/data/example_model/") for n in names)
    assert "Classifier: ChimeraX :: Command :: segment :: Volume Data" in metadata
    assert "Classifier: ChimeraX :: Bundle :: Volume Data :: 1,1 :: chimerax.medseg" in metadata


def test_chimerax_builder_wheel_installs_and_registers_segment(session, tmp_path):
    """The toolshed wheel, installed on its own (no source tree on the path), runs `segment models`."""
    wheel = _build_wheel_with_chimerax_builder(session, tmp_path)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True)
    # The wheel's copy, not the editable install of the source tree, must answer.
    code = (f"import sys; sys.path[:0] = [{str(target)!r}, {str(REPO / 'scripts')!r}]; "
            "sys.meta_path[:] = [f for f in sys.meta_path if 'Editable' not in type(f).__name__]; "
            "import chimerax_headless as h; cx = h.import_chimerax_package(); "
            f"cx.__path__.insert(0, {str(target / 'chimerax')!r}); s = h.start_session(); "
            "from chimerax.core.commands import run; names = run(s, 'segment models'); "
            "import chimerax.medseg as m; print(m.__file__); print('example' in names)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-2].startswith(str(target)) and lines[-1] == "True"


@pytest.mark.parametrize("volume_names, channels, expected, by_name", [
    (["case_t1.nii.gz", "case_t2.nii.gz"], ["T2", "T1"], [1, 0], True),
    (["BraTS_flair", "BraTS_t1ce", "BraTS_t1", "BraTS_t2"], ["T1", "T1ce", "T2", "FLAIR"], [2, 1, 3, 0], True),
    (["scan a", "scan b"], ["T1", "T2"], [0, 1], False),           # no names match: order given
    (["t1 t2 mix", "other"], ["T1", "T2"], [0, 1], False),         # ambiguous: order given
])
def test_channels_match_by_name_only_when_unambiguous(volume_names, channels, expected, by_name):
    from chimerax.medseg.chimerax_ui.volumes import match_channels
    assert match_channels(volume_names, channels) == (expected, by_name)
