"""``segment`` with TotalSegmentator's multi-part `total` model in real headless ChimeraX: the same labels as
TotalSegmentator 2.18 (tests/data/totalseg/, made by scripts/make_totalseg_fixtures.py), also with roiSubset."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "totalseg"


def _open_ct(session, name: str):
    from chimerax.medseg.chimerax_ui.volumes import open_image_volumes
    from chimerax.medseg.images import read_case
    return open_image_volumes(session, read_case([str(DATA / "cases" / f"{name}.nii.gz")]), [name])[0]


def _reference(name: str) -> np.ndarray:
    import nibabel as nib
    return np.asarray(nib.load(str(DATA / "reference" / f"{name}.nii.gz")).dataobj).astype(np.int64).transpose(2, 1, 0)


@pytest.mark.parametrize(("case", "roi"), [("ct", False), ("ct_lps", True)])
def test_segment_total_equals_totalsegmentator(session, run, case, roi):
    volume = _open_ct(session, case)
    subset = json.loads((DATA / "reference" / "roi_subset.json").read_text())
    extra = f" roiSubset {','.join(subset)}" if roi else ""
    job = run(f"segment {DATA / 'weights'} #{volume.id_string} device cpu surfaces false{extra}")
    assert job.state == "done"
    np.testing.assert_array_equal(job.models[0].full_matrix(), _reference(f"{case}_roi" if roi else case))


def test_statistics_and_split_classes_are_refused_with_a_reason(session, run):
    from chimerax.core.errors import UserError
    volume = _open_ct(session, "ct")
    with pytest.raises(UserError, match="beside `medseg predict`'s output"):
        run(f"segment {DATA / 'weights'} #{volume.id_string} device cpu statistics true")


def test_segment_force_split_equals_totalsegmentators_force_split(session, run):
    volume = _open_ct(session, "ct_tall")
    job = run(f"segment {DATA / 'weights'} #{volume.id_string} device cpu surfaces false forceSplit true")
    assert job.state == "done"
    theirs = _reference("ct_tall_split")
    assert np.count_nonzero(theirs != _reference("ct_tall")) > 100  # the split changes the labels
    np.testing.assert_array_equal(job.models[0].full_matrix(), theirs)
