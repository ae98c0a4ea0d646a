"""TotalSegmentator's clean-up of its `body` task's labels (inference/totalseg_clean_up.py) against
TotalSegmentator 2.18: its own functions on random label maps, and the whole task on the real CT with a
random-weight `body` model (scripts/make_totalseg_fixtures.py --other-tasks)."""
import dataclasses
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from totalsegmentator.postprocessing import keep_largest_blob_multilabel, remove_small_blobs_multilabel

from chimerax.medseg.cli import main
from chimerax.medseg.images import read_case
from chimerax.medseg.inference.conventions import ConventionPredictor, open_predictor
from chimerax.medseg.inference.options import PredictOptions
from chimerax.medseg.inference.totalseg_clean_up import clean_up
from chimerax.medseg.models.conventions import CleanUp

DATA = Path(__file__).resolve().parents[1] / "data" / "totalseg"
BODY = DATA / "other_weights"
CT = DATA / "cases" / "ct.nii.gz"
NAMES = {1: "body_trunc", 2: "body_extremities"}


def _labels(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj).transpose(2, 1, 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clean_up_equals_totalsegmentators_functions(seed):
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.normal(size=(3, 30, 34, 26)), (0, 1.5, 1.5, 1.5))
    labels = np.argmax(smooth, axis=0).astype(np.uint8)  # blobs of many sizes
    zooms = tuple(np.float32(z) for z in rng.uniform(1.0, 3.0, size=3))
    min_mm3 = float(np.percentile(np.bincount(ndimage.label(labels == 2)[0].ravel())[1:], 60) * np.prod(zooms))
    theirs = keep_largest_blob_multilabel(labels.copy(), NAMES, ["body_trunc"], quiet=True)
    theirs = remove_small_blobs_multilabel(theirs, NAMES, ["body_extremities"],
                                           interval=[min_mm3 / np.prod(zooms), 1e10], quiet=True)
    steps = (CleanUp("largest_component", ("body_trunc",)),
             CleanUp("remove_small_components", ("body_extremities",), min_mm3))
    ours = clean_up(labels, steps, {v: k for k, v in NAMES.items()}, zooms)
    assert np.count_nonzero(theirs != labels) > 0 and np.any(theirs == 2)  # both steps did something
    np.testing.assert_array_equal(ours, theirs)


def test_body_equals_totalsegmentator_with_its_clean_up(tmp_path):
    out = tmp_path / "body.nii.gz"
    assert main(["predict", "--quiet", "--device", "cpu", "-m", str(BODY), "-i", str(CT), "-o", str(out)]) == 0
    theirs = _labels(DATA / "reference" / "ct_body.nii.gz")
    assert set(np.unique(theirs)) == {0, 1, 2}
    np.testing.assert_array_equal(_labels(out), theirs)


def test_the_clean_up_changes_the_body_labels():
    predictor = open_predictor(BODY, PredictOptions(device="cpu").validate())
    assert isinstance(predictor, ConventionPredictor) and predictor.model_info.entry.name == "totalseg_body"
    conventions = dataclasses.replace(predictor.model_info.conventions, clean_up=())
    entry = dataclasses.replace(predictor.model_info.entry, conventions=conventions)
    raw = dataclasses.replace(predictor, model_info=dataclasses.replace(predictor.model_info, entry=entry))
    unclean = raw.predict(read_case([CT])).labels
    theirs = _labels(DATA / "reference" / "ct_body.nii.gz")
    for value in (1, 2):  # each structure loses voxels to its clean-up
        assert np.count_nonzero((unclean == value) & (theirs != value)) > 100, value
