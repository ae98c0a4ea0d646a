"""The bundle as ChimeraX sees it: toolshed discovery, command dispatch, metadata, wheel build."""
from __future__ import annotations

import shutil
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


def test_bundle_info_and_pyproject_declare_the_same_chimerax_classifiers(session):
    import site
    from importlib.metadata import distributions
    from chimerax.bundle_builder import BundleBuilder
    builder = BundleBuilder(session.logger, str(REPO))
    builder._make_setup_arguments()
    from_xml = [c for c in builder.setup_arguments["classifiers"] if c.startswith("ChimeraX ::")]
    # the installed distribution (not a source checkout's stray *.egg-info)
    dist = next(distributions(name="ChimeraX-MedSeg", path=site.getsitepackages()))
    installed = [c for c in dist.metadata.get_all("Classifier") if c.startswith("ChimeraX ::")]
    assert [c.rstrip() for c in from_xml] == [c.rstrip() for c in installed]
    assert builder.package == "chimerax.medseg"


def test_chimerax_bundle_builder_makes_a_wheel_with_code_and_data(session, tmp_path):
    """What `devel install` does: build from bundle_info.xml (pyproject.toml is ignored)."""
    from chimerax.bundle_builder import BundleBuilder
    src = tmp_path / "repo"
    shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("bundle_info.xml", "pyproject.toml"):
        shutil.copy(REPO / name, src / name)
    builder = BundleBuilder(session.logger, str(src))
    builder.make_wheel()
    wheel = Path(builder.wheel_path)
    assert wheel.is_file() and wheel.name.startswith("ChimeraX_MedSeg-0.1.0-")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "chimerax/medseg/cmd.py" in names and "chimerax/medseg/display.py" in names
    assert "chimerax/medseg/models_manifest.json" in names
    assert "Classifier: ChimeraX :: Command :: segment :: Volume Data" in metadata
    if (REPO / "src" / "data").is_dir():
        assert any(n.startswith("chimerax/medseg/data/") for n in names)


@pytest.mark.parametrize("volume_names, channels, expected, by_name", [
    (["case_t1.nii.gz", "case_t2.nii.gz"], ["T2", "T1"], [1, 0], True),
    (["BraTS_flair", "BraTS_t1ce", "BraTS_t1", "BraTS_t2"], ["T1", "T1ce", "T2", "FLAIR"], [2, 1, 3, 0], True),
    (["scan a", "scan b"], ["T1", "T2"], [0, 1], False),           # no names match: order given
    (["t1 t2 mix", "other"], ["T1", "T2"], [0, 1], False),         # ambiguous: order given
])
def test_channels_match_by_name_only_when_unambiguous(volume_names, channels, expected, by_name):
    from chimerax.medseg.display import match_channels
    assert match_channels(volume_names, channels) == (expected, by_name)
