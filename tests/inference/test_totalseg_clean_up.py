"""TotalSegmentator's clean-ups of its `body` and `vertebrae_pp` tasks' labels (inference/totalseg_clean_up.py,
vertebrae_relabel.py) against TotalSegmentator 2.18: its own functions on random label maps, and each whole task
on the real CT with a random-weight model (scripts/make_totalseg_fixtures.py --other-tasks)."""
import dataclasses
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from totalsegmentator.map_to_binary import class_map
from totalsegmentator.postprocessing import (
    keep_largest_blob_multilabel,
    postprocess_vertebrae_pp,
    remove_small_blobs_multilabel,
)

from chimerax.medseg.cli import main
from chimerax.medseg.images import read_case
from chimerax.medseg.inference.conventions import ConventionPredictor, open_predictor
from chimerax.medseg.inference.options import PredictOptions
from chimerax.medseg.inference.totalseg_clean_up import clean_up
from chimerax.medseg.inference.vertebrae_relabel import relabel_vertebrae
from chimerax.medseg.models.conventions import CleanUp

DATA = Path(__file__).resolve().parents[1] / "data" / "totalseg"
BODY = DATA / "other_weights" / "Dataset299_body_1559subj"
VERTEBRAE = DATA / "other_weights" / "Dataset803_TotalSegmentator_vertebrae_inner_1559subj"
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


VERTEBRA = class_map["vertebrae_pp"]  # 1 C1 ... 24 L5


def _vertebrae(rng, groups: list[list[int]]) -> np.ndarray:
    """Blobs stacked along z (the third axis), a vertebra label each, bottom first; the labels of one group
    share faces (one component), groups are apart."""
    out = np.zeros((24, 22, sum(5 * len(g) + 4 for g in groups) + 6), dtype=np.uint8)
    z = 3
    for group in groups:
        for value in group:
            out[4:18 + int(rng.integers(0, 3)), 5 + int(rng.integers(0, 2)):17, z:z + 5] = value
            z += 5
        z += 4
    out[1:3, 1:3, 1:3] = groups[0][0]  # a speck: too small to count as a vertebra
    return out


@pytest.mark.parametrize(("groups", "zooms"), [
    ([[24], [23, 22], [21], [20]], (1.5, 1.5, 1.5)),   # from the bottom: L5 present, L4 and L3 touch
    ([[4], [3, 2], [1]], (1.5, 1.5, 1.5)),             # a head scan: C1 present, L5 not -> from the top
    ([[20], [18], [19]], (1.5, 1.5, 1.5)),             # no labels touch: only grown
    ([[15], [14, 13], [12]], (1.2, 0.9, 2.5)),         # anisotropic voxels: an uneven ellipsoid
])
def test_vertebrae_relabel_equals_totalsegmentators(groups, zooms):
    data = _vertebrae(np.random.default_rng(len(groups)), groups)
    zooms = tuple(np.float32(z) for z in zooms)
    theirs = postprocess_vertebrae_pp(data.copy(), VERTEBRA, voxel_volume=np.prod(zooms), voxel_spacing=zooms)
    ours = relabel_vertebrae(data, list(VERTEBRA), zooms, 100.0, 3.0)
    assert np.count_nonzero(theirs != data) > 0
    np.testing.assert_array_equal(ours, theirs)


def test_one_touching_component_is_labelled_where_totalsegmentator_fails():
    data = _vertebrae(np.random.default_rng(0), [[8, 7]])
    data[1:3, 1:3, 1:3] = 0
    zooms = (np.float32(1.5),) * 3
    with pytest.raises(IndexError):  # TotalSegmentator 2.18 with this scipy: one kept component breaks its sort
        postprocess_vertebrae_pp(data.copy(), VERTEBRA, voxel_volume=np.prod(zooms), voxel_spacing=zooms)
    ours = relabel_vertebrae(data, list(VERTEBRA), zooms, 100.0, 3.0)
    assert set(np.unique(ours)) == {0, 8}  # counted from the bottom, starting at the highest label present


def test_vertebrae_pp_equals_totalsegmentator_with_its_clean_up():
    predictor = open_predictor(VERTEBRAE, PredictOptions(device="cpu").validate())
    assert predictor.model_info.entry.name == "totalseg_vertebrae_pp"
    theirs = _labels(DATA / "reference" / "ct_vertebrae_pp.nii.gz")
    assert len(np.unique(theirs)) > 5
    ours = predictor.predict(read_case([CT])).labels
    np.testing.assert_array_equal(ours, theirs)
    conventions = dataclasses.replace(predictor.model_info.conventions, clean_up=())
    entry = dataclasses.replace(predictor.model_info.entry, conventions=conventions)
    raw = dataclasses.replace(predictor, model_info=dataclasses.replace(predictor.model_info, entry=entry))
    assert np.count_nonzero(raw.predict(read_case([CT])).labels != theirs) > 100  # the clean-up changes them


@pytest.mark.parametrize(("dataset", "name"), [("Dataset597_mri_body_139subj", "body_mr"),
                                               ("Dataset305_vertebrae_discs_1559subj", "vertebrae_body")])
def test_tasks_without_a_clean_up_equal_totalsegmentator(dataset, name):
    predictor = open_predictor(DATA / "other_weights" / dataset, PredictOptions(device="cpu").validate())
    assert predictor.model_info.entry.name == f"totalseg_{name}" and not predictor.model_info.conventions.clean_up
    theirs = _labels(DATA / "reference" / f"ct_{name}.nii.gz")
    assert len(np.unique(theirs)) == 3
    np.testing.assert_array_equal(predictor.predict(read_case([CT])).labels, theirs)
