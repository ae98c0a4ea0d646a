"""TotalSegmentator's `total` task (five 1.5 mm parts merged, the 6 mm model for --roi-subset) against
TotalSegmentator 2.18 itself, on a real CT stored three ways (RAS, LPS, oblique).

The random-weight part models (TotalSegmentator's dataset ids, trainer names and class maps, networks
built by nnU-Net's code) and TotalSegmentator's answers on them are committed in tests/data/totalseg/,
made by scripts/make_totalseg_fixtures.py (TotalSegmentator there read the weights from its own
TOTALSEG_HOME_DIR and downloaded nothing).
"""
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from chimerax.medseg.cli import main
from chimerax.medseg.errors import MedSegError
from chimerax.medseg.images import read_case
from chimerax.medseg.inference.conventions import ConventionPredictor, open_predictor
from chimerax.medseg.inference.options import PredictOptions

DATA = Path(__file__).resolve().parents[1] / "data" / "totalseg"
WEIGHTS = DATA / "weights"
CASES = ("ct", "ct_lps", "ct_oblique")
ROI_SUBSET = json.loads((DATA / "reference" / "roi_subset.json").read_text())


def _reference(name: str) -> np.ndarray:
    return np.asarray(nib.load(str(DATA / "reference" / f"{name}.nii.gz")).dataobj).transpose(2, 1, 0)


def _dice_by_label(ours: np.ndarray, theirs: np.ndarray) -> dict[int, float]:
    values = set(np.unique(ours)) | set(np.unique(theirs))
    return {int(v): 2 * np.sum((ours == v) & (theirs == v)) / (np.sum(ours == v) + np.sum(theirs == v))
            for v in values if v != 0}


def _assert_parity(ours: np.ndarray, theirs: np.ndarray, least_labels: int = 2) -> None:
    assert ours.shape == theirs.shape
    assert len(np.unique(theirs)) > least_labels, "the fixture models must label several structures"
    if not np.array_equal(ours, theirs):  # fp16 accumulation may flip a voxel where two classes tie
        dice = _dice_by_label(ours, theirs)
        assert min(dice.values()) >= 0.99, {k: round(v, 4) for k, v in dice.items() if v < 0.99}


@pytest.fixture(scope="module")
def total() -> ConventionPredictor:
    predictor = open_predictor(WEIGHTS, PredictOptions(device="cpu").validate())
    assert isinstance(predictor, ConventionPredictor)
    return predictor


@pytest.fixture(scope="module")
def ct_run(tmp_path_factory) -> Path:
    """`medseg predict -m <TotalSegmentator's weights folder> --statistics` on the RAS-stored CT."""
    out = tmp_path_factory.mktemp("ct") / "ct.nii.gz"
    assert main(["predict", "--quiet", "--device", "cpu", "-m", str(WEIGHTS), "-i", str(DATA / "cases" / "ct.nii.gz"),
                 "-o", str(out), "--statistics"]) == 0
    return out


def test_total_equals_totalsegmentator(ct_run):
    _assert_parity(np.asarray(nib.load(str(ct_run)).dataobj).transpose(2, 1, 0), _reference("ct"), least_labels=20)


@pytest.mark.parametrize("case", CASES[1:])
def test_total_equals_totalsegmentator_on_lps_and_oblique_storage(total, case):
    ours = total.predict(read_case([DATA / "cases" / f"{case}.nii.gz"])).labels
    _assert_parity(ours, _reference(case), least_labels=20)


def test_roi_subset_runs_the_parts_holding_them_inside_the_coarse_crop(tmp_path):
    out = tmp_path / "roi.nii.gz"
    assert main(["predict", "--quiet", "--device", "cpu", "-m", str(WEIGHTS), "-i", str(DATA / "cases" / "ct.nii.gz"),
                 "-o", str(out), "--roi-subset", *ROI_SUBSET, "--split-classes"]) == 0
    theirs = _reference("ct_roi")
    ours = np.asarray(nib.load(str(out)).dataobj).transpose(2, 1, 0)
    assert 0 < np.count_nonzero(theirs) < theirs.size // 2, "the crop must keep some structures, not everything"
    _assert_parity(ours, theirs)
    masks = sorted(p.name for p in (tmp_path / "roi").iterdir())
    assert masks == sorted(f"{name}.nii.gz" for name in ROI_SUBSET)  # TotalSegmentator's names, one per structure
    predictor = open_predictor(WEIGHTS, PredictOptions(device="cpu", roi_subset=ROI_SUBSET).validate())
    assert len(predictor.parts) == len({"organs", "vertebrae", "cardiac", "ribs"})  # not the muscles part
    liver = predictor.model_info.label_values["liver"]
    mask = np.asarray(nib.load(str(tmp_path / "roi" / "liver.nii.gz")).dataobj).transpose(2, 1, 0)
    np.testing.assert_array_equal(mask, (ours == liver).astype(np.uint8))


@pytest.mark.parametrize("case", CASES[1:])
def test_roi_subset_equals_totalsegmentator_on_lps_and_oblique_storage(case):
    predictor = open_predictor(WEIGHTS, PredictOptions(device="cpu", roi_subset=ROI_SUBSET).validate())
    ours = predictor.predict(read_case([DATA / "cases" / f"{case}.nii.gz"])).labels
    _assert_parity(ours, _reference(f"{case}_roi"))


def test_statistics_match_totalsegmentators(ct_run, total):
    ours = json.loads((ct_run.parent / "ct_statistics.json").read_text())
    theirs = json.loads((DATA / "reference" / "ct_statistics.json").read_text())
    assert list(ours) == list(theirs)
    assert any(s["volume"] > 0 for s in theirs.values())
    ct = read_case([DATA / "cases" / "ct.nii.gz"]).array[0]
    labels, values = _reference("ct"), total.model_info.label_values
    for name, stats in theirs.items():
        assert ours[name]["volume"] == pytest.approx(stats["volume"]), name
        assert ours[name]["intensity"] == pytest.approx(stats["intensity"], abs=1e-4), name
        inside = ct[labels == values[name]]
        expected_std = float(np.std(inside)) if stats["volume"] > 0 else 0.0  # TotalSegmentator writes no std
        assert ours[name]["intensity_std"] == pytest.approx(expected_std, abs=1e-4), name


# --- bad input: one clear error, before any work, nothing written ------------------------------------------

def _copy_weights(tmp_path: Path, leave_out: str = "") -> Path:
    target = tmp_path / "weights"
    for folder in WEIGHTS.iterdir():
        if not folder.name.startswith(leave_out or "\0"):
            shutil.copytree(folder, target / folder.name)
    return target


def _refused(capsys, tmp_path: Path, model: Path, *extra: str) -> str:
    """The one-line error `medseg predict` prints (no traceback), with nothing written."""
    out = tmp_path / "out" / "ct.nii.gz"
    capsys.readouterr()
    assert main(["predict", "--quiet", "--device", "cpu", "-m", str(model), "-i", str(DATA / "cases" / "ct.nii.gz"),
                 "-o", str(out), *extra]) != 0
    message = capsys.readouterr().err
    assert message.startswith("medseg: error: ") and "Traceback" not in message
    assert not out.parent.exists() or not any(out.parent.iterdir())
    return message


def test_a_missing_part_is_named(capsys, tmp_path):
    message = _refused(capsys, tmp_path, _copy_weights(tmp_path, leave_out="Dataset293"))
    assert "Dataset293_TotalSegmentator_part3_cardiac_1559subj" in message and "totalseg_total" in message


def test_parts_of_two_totalsegmentator_versions_are_refused(capsys, tmp_path):
    weights = _copy_weights(tmp_path, leave_out="Dataset295")
    ribs = WEIGHTS / "Dataset295_TotalSegmentator_part5_ribs_1559subj"
    shutil.copytree(ribs, weights / "Dataset835_TotalSegmentator_part5_ribs_1559subj")  # v3's ribs part
    message = _refused(capsys, tmp_path, weights)
    assert "different TotalSegmentator versions" in message
    assert "v2.0.0-weights" in message and "v3.0.0-weights" in message


def test_a_part_with_another_versions_labels_is_refused(capsys, tmp_path):
    weights = _copy_weights(tmp_path)
    dataset_json = next((weights / "Dataset292_TotalSegmentator_part2_vertebrae_1532subj").glob("*/dataset.json"))
    info = json.loads(dataset_json.read_text())
    info["labels"]["vertebrae_S2"] = len(info["labels"])  # a class this release's part does not have
    dataset_json.write_text(json.dumps(info))
    assert "another TotalSegmentator version" in _refused(capsys, tmp_path, weights)


def test_an_unknown_roi_name_lists_close_matches_and_the_known_names(capsys, tmp_path):
    message = _refused(capsys, tmp_path, WEIGHTS, "--roi-subset", "liver", "livr", "vertebra_L1")
    assert "'livr'" in message and "'liver'" in message and "'vertebrae_L1'" in message
    assert "rib_right_12" in message  # the list of structures that exist


def test_roi_subset_is_refused_for_a_plain_model(tiny_model):
    with pytest.raises(MedSegError, match="--roi-subset selects structures of TotalSegmentator"):
        open_predictor(tiny_model, PredictOptions(device="cpu", roi_subset=["core"]).validate())


def test_one_part_folder_alone_is_an_ordinary_model():
    part = next((WEIGHTS / "Dataset291_TotalSegmentator_part1_organs_1559subj").iterdir())
    predictor = open_predictor(part, PredictOptions(device="cpu").validate())
    assert not isinstance(predictor, ConventionPredictor)
    assert predictor.label_names[5] == "liver"  # the part's own values
