"""``segment A,B VOLUMES``: an ensemble of configurations in real headless ChimeraX, as `medseg predict -m A -m B`."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "nnunet"
MODELS = [FIXTURES / "3d_fullres", FIXTURES / "2d"]  # Dataset901: 3d_fullres (trained) and 2d
CASE = [FIXTURES / "cases" / "typical_0000.nii.gz", FIXTURES / "cases" / "typical_0001.nii.gz"]


def _open_case(session):
    from chimerax.medseg.chimerax_ui.volumes import open_image_volumes
    from chimerax.medseg.images import read_case
    volumes = open_image_volumes(session, read_case([str(p) for p in CASE]), ["T1", "T2"])
    return ",".join(v.id_string for v in volumes).join(("#", ""))


@pytest.fixture(scope="module")
def cli_labels(tmp_path_factory):
    import nibabel as nib

    from chimerax.medseg.cli import main
    out = tmp_path_factory.mktemp("predict") / "typical.nii.gz"
    assert main(["predict", "-m", str(MODELS[0]), "-m", str(MODELS[1]), "-i", *map(str, CASE), "-o", str(out),
                 "--device", "cpu", "--no-mirroring", "--quiet"]) == 0
    return np.asarray(nib.load(str(out)).dataobj).astype(np.int64).transpose(2, 1, 0)


def test_segment_with_two_configurations_matches_medseg_predict(session, run, log, cli_labels):
    spec = _open_case(session)
    job = run(f"segment {MODELS[0]},{MODELS[1]} {spec} device cpu mirroring false surfaces false")
    assert job.state == "done"
    np.testing.assert_array_equal(job.models[0].full_matrix(), cli_labels)
    assert any("3d_fullres + 2d" in m.text for m in log.messages), "the log names both members"


def test_members_of_another_dataset_are_a_user_error_and_add_nothing(session, run):
    from chimerax.core.errors import UserError
    spec = _open_case(session)
    before = len(session.models)
    with pytest.raises(UserError, match=re.compile("different datasets")):
        run(f"segment {MODELS[0]},{FIXTURES / 'regions_3d_fullres'} {spec} device cpu")
    assert len(session.models) == before
