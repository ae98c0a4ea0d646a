"""TotalSegmentator's split of large images in three slabs along z (inference/triple_split.py), against
TotalSegmentator 2.18 itself: its `total` task on a real CT with 60 slices at 1.5 mm, with and without its
--force_split (references made by scripts/make_totalseg_fixtures.py --split, on the committed random-weight
part models)."""
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from chimerax.medseg.cli import main
from chimerax.medseg.errors import MedSegError
from chimerax.medseg.images import read_case
from chimerax.medseg.inference import triple_split
from chimerax.medseg.inference.conventions import ConventionPredictor, open_predictor
from chimerax.medseg.inference.ensemble import make_predictor
from chimerax.medseg.inference.options import PredictOptions

DATA = Path(__file__).resolve().parents[1] / "data" / "totalseg"
WEIGHTS = DATA / "weights"
TALL = DATA / "cases" / "ct_tall.nii.gz"


def _labels(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj).transpose(2, 1, 0)


@pytest.fixture(scope="module")
def references() -> tuple[np.ndarray, np.ndarray]:
    """TotalSegmentator's labels without and with --force_split; the split must change some of them."""
    whole, split = _labels(DATA / "reference" / "ct_tall.nii.gz"), _labels(DATA / "reference" / "ct_tall_split.nii.gz")
    assert len(np.unique(split)) > 20, "the fixture models must label many structures"
    assert np.count_nonzero(whole != split) > 100, "the split must change the labels, or this test proves nothing"
    return whole, split


@pytest.fixture(scope="module")
def total() -> ConventionPredictor:
    predictor = open_predictor(WEIGHTS, PredictOptions(device="cpu").validate())
    assert isinstance(predictor, ConventionPredictor)
    return predictor


def test_force_split_equals_totalsegmentators_voxel_for_voxel(tmp_path, references):
    out = tmp_path / "tall.nii.gz"
    assert main(["predict", "--quiet", "--device", "cpu", "-m", str(WEIGHTS), "-i", str(TALL), "-o", str(out),
                 "--force-split"]) == 0
    np.testing.assert_array_equal(_labels(out), references[1])


def test_an_image_below_the_size_rule_is_not_split(total, references):
    np.testing.assert_array_equal(total.predict(read_case([TALL])).labels, references[0])


def test_a_multi_part_model_splits_by_itself_above_the_size_rule(total, references, monkeypatch):
    monkeypatch.setattr(triple_split, "SPLIT_VOXELS", 80 * 80 * 60 - 1)  # the tall case's grid: 80 x 80 x 60
    monkeypatch.setattr(triple_split, "SPLIT_SLICES", 59)
    np.testing.assert_array_equal(total.predict(read_case([TALL])).labels, references[1])


def test_the_size_rule_is_totalsegmentators():
    big = (512, 512, 901)
    assert triple_split.needs_split(big, multi_part=True, force=False)
    assert not triple_split.needs_split((512, 512, 900), multi_part=True, force=False)  # not more than 512^2 x 900
    assert not triple_split.needs_split((1400, 1400, 200), multi_part=True, force=False)  # 200 slices are too few
    assert not triple_split.needs_split(big, multi_part=False, force=False)  # one model: only when forced
    assert triple_split.needs_split((80, 80, 60), multi_part=False, force=True)


@pytest.mark.parametrize("slices", [58, 59, 60, 61, 301])
def test_the_three_slabs_give_back_every_slice_once_from_inside_the_image(slices):
    slabs = triple_split.slabs(slices)
    given = np.concatenate([np.arange(slices)[s.source][s.keep] for s in slabs])
    np.testing.assert_array_equal(given, np.arange(slices))
    assert [s.target.start for s in slabs] == [0, slices // 3, 2 * (slices // 3)]
    for s in slabs:
        assert 0 <= s.source.start and s.source.stop <= slices
        before, after = s.keep.start, (s.source.stop - s.source.start) - s.keep.stop  # context around them
        assert before >= triple_split.MARGIN - 1 or s.target.start == 0
        assert after >= triple_split.MARGIN or s.target.stop == slices


def test_too_few_slices_are_refused_before_any_prediction(capsys, tmp_path):
    out = tmp_path / "out" / "ct.nii.gz"
    capsys.readouterr()
    assert main(["predict", "--quiet", "--device", "cpu", "-m", str(WEIGHTS), "-i", str(DATA / "cases" / "ct.nii.gz"),
                 "-o", str(out), "--force-split"]) != 0
    message = capsys.readouterr().err
    assert message.startswith("medseg: error: ") and "Traceback" not in message
    assert "58 slices" in message and "has 44" in message  # 22 slices at 3 mm are 44 at 1.5 mm
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_force_split_is_refused_for_a_plain_model(tiny_model):
    with pytest.raises(MedSegError, match="--force-split splits the image as TotalSegmentator does"):
        open_predictor(tiny_model, PredictOptions(device="cpu", force_split=True).validate())


def test_force_split_is_refused_for_an_ensemble(tiny_model, tmp_path):
    twin = shutil.copytree(tiny_model, tmp_path / "twin")  # the same dataset: an ensemble that would run
    options = PredictOptions(device="cpu", models=[str(tiny_model), str(twin)], force_split=True)
    with pytest.raises(MedSegError, match="--force-split is for one TotalSegmentator model, not an ensemble"):
        make_predictor(options.validate())
