"""3d_lowres -> 3d_cascade_fullres against nnU-Net v2's own cascade predictions.

The fixture (tests/data/nnunet_cascade/, made by scripts/make_nnunet_cascade_fixtures.py with
nnunetv2 2.8.1: its planner made the 3d_lowres stage, its trainer built both networks, its
predictor made the references) holds both stages' model folders under the dataset's results folder,
nnU-Net's 3d_lowres predictions, and its 3d_cascade_fullres predictions made from those
(``-prev_stage_predictions``), with probabilities.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from chimerax.medseg.cli import main
from chimerax.medseg.errors import MedSegError
from chimerax.medseg.images import read_case, read_image, write_label_image
from chimerax.medseg.inference.cascade_predictor import CascadePredictor, load_predictor
from chimerax.medseg.inference.options import PredictOptions
from chimerax.medseg.models.model_folder import open_model_folder

DATA = Path(__file__).resolve().parent.parent / "data" / "nnunet_cascade"
MANIFEST = json.loads((DATA / "manifest.json").read_text())
RESULTS = DATA / MANIFEST["dataset"]
LOWRES_REF = DATA / MANIFEST["stages"]["3d_lowres"]["reference"]
CASCADE_REF = DATA / MANIFEST["stages"]["3d_cascade_fullres"]["reference"]
CASES = sorted(MANIFEST["cases"])
MIN_DICE, PROBABILITY_TOLERANCE = 0.99, 0.02
REACH = 20  # voxels: more than the cascade network's receptive field radius on the fixture's grid


def _files(case: str) -> list[Path]:
    return [DATA / "cases" / f for f in MANIFEST["cases"][case]["files"]]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1))


def _reference(folder: Path, case: str) -> tuple[np.ndarray, np.ndarray]:
    labels = read_image(folder / f"{case}.nii.gz").array[0].astype(np.int64)
    return labels, np.load(folder / f"{case}.npz")["probabilities"]


def _options(**kw) -> PredictOptions:
    return PredictOptions(device="cpu", configuration="3d_cascade_fullres", **kw).validate()


@pytest.fixture(scope="module")
def given_lowres() -> CascadePredictor:
    predictor = load_predictor(open_model_folder(RESULTS, "3d_cascade_fullres"), _options(), LOWRES_REF)
    assert isinstance(predictor, CascadePredictor) and predictor.previous is None
    return predictor


@pytest.mark.parametrize("case", CASES)
def test_cascade_with_nnunets_lowres_predictions_matches_nnunet(given_lowres, case):
    reference, probabilities = _reference(CASCADE_REF, case)
    ours = given_lowres.predict(read_case(_files(case)), save_probabilities=True, case_name=case)
    assert ours.labels.shape == reference.shape
    for value in (1, 2):
        assert (reference == value).sum() > 50, "the oracle must predict every label for the test to mean much"
        assert _dice(ours.labels == value, reference == value) >= MIN_DICE, f"label {value}"
    assert np.abs(ours.probabilities - probabilities).max() <= PROBABILITY_TOLERANCE


def test_the_previous_stage_input_changes_the_answer(given_lowres, tmp_path):
    """The parity above means something: with an empty previous stage the cascade answers differently."""
    case = "typical"
    image = read_case(_files(case))
    empty = np.zeros(image.shape, np.uint8)
    write_label_image(empty, image, tmp_path / f"{case}.nii.gz")
    blind = CascadePredictor(given_lowres.stage, None, tmp_path).predict(image, case_name=case)
    reference, _ = _reference(CASCADE_REF, case)
    assert min(_dice(blind.labels == v, reference == v) for v in (1, 2)) < 0.9


def test_medseg_predict_runs_the_lowres_stage_itself(tmp_path):
    """`medseg predict -c 3d_cascade_fullres` on the results folder: lowres first, then the cascade."""
    case = "cropped"
    out = tmp_path / f"{case}.nii.gz"
    assert main(["predict", "--quiet", "--device", "cpu", "-m", str(RESULTS), "-c", "3d_cascade_fullres",
                 "-i", *map(str, _files(case)), "-o", str(out), "--save-probabilities"]) == 0
    ours = read_image(out).array[0]
    reference, probabilities = _reference(CASCADE_REF, case)
    for value in (1, 2):
        assert _dice(ours == value, reference == value) >= MIN_DICE, f"label {value}"
    ours_p = np.load(tmp_path / f"{case}.npz")["probabilities"]
    # our lowres stage differs from nnU-Net's on a handful of voxels, where nnU-Net's own top two
    # probabilities tie; the cascade sees those as different one-hot inputs, which moves its
    # probabilities within the network's reach of them, and nowhere else
    lowres = load_predictor(open_model_folder(RESULTS, "3d_lowres"), PredictOptions(device="cpu").validate())
    ours_lowres = lowres.predict(read_case(_files(case))).labels
    nnunet_lowres, nnunet_lowres_p = _reference(LOWRES_REF, case)
    differ = ours_lowres != nnunet_lowres
    top2 = np.sort(nnunet_lowres_p, 0)[-2:]
    assert differ.sum() <= 20 and np.all((top2[1] - top2[0])[differ] < 1e-3)
    far = distance_transform_edt(~differ) > REACH if differ.any() else np.ones(differ.shape, bool)
    assert far.mean() > 0.75  # the comparison still covers most of the image
    assert np.abs(ours_p - probabilities)[:, far].max() <= PROBABILITY_TOLERANCE


def test_lowres_stage_alone_matches_nnunet():
    predictor = load_predictor(open_model_folder(RESULTS, "3d_lowres"), PredictOptions(device="cpu").validate())
    case = "aniso"
    reference, probabilities = _reference(LOWRES_REF, case)
    ours = predictor.predict(read_case(_files(case)), save_probabilities=True)
    for value in (1, 2):
        assert _dice(ours.labels == value, reference == value) >= MIN_DICE
    assert np.abs(ours.probabilities - probabilities).max() <= PROBABILITY_TOLERANCE


def test_cascade_without_its_lowres_stage_is_refused_and_writes_nothing(tmp_path, capsys):
    alone = tmp_path / "results"
    shutil.copytree(RESULTS / "nnUNetTrainer__nnUNetPlans__3d_cascade_fullres",
                    alone / "nnUNetTrainer__nnUNetPlans__3d_cascade_fullres")
    out = tmp_path / "out" / "typical.nii.gz"
    assert main(["predict", "--device", "cpu", "-m", str(alone), "-c", "3d_cascade_fullres",
                 "-i", *map(str, _files("typical")), "-o", str(out)]) != 0
    message = capsys.readouterr().err
    assert "nnUNetTrainer__nnUNetPlans__3d_lowres" in message and "--prev-stage-predictions" in message
    assert "Traceback" not in message
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_a_case_without_its_previous_stage_prediction_is_named_and_skipped(tmp_path, capsys):
    """Checked before the first prediction: in a cohort that case is skipped (and named), the others written."""
    cases = tmp_path / "cases"
    cases.mkdir()
    for case in ("typical", "small"):
        for f in _files(case):
            shutil.copy(f, cases / f.name)
    given = tmp_path / "lowres"
    given.mkdir()
    shutil.copy(LOWRES_REF / "typical.nii.gz", given / "typical.nii.gz")  # none for "small"
    out = tmp_path / "out"
    assert main(["predict", "--device", "cpu", "-m", str(RESULTS), "-c", "3d_cascade_fullres", "-i", str(cases),
                 "-o", str(out), "--prev-stage-predictions", str(given)]) != 0
    message = capsys.readouterr().err
    assert "small" in message and "small.nii.gz" in message
    assert (out / "typical.nii.gz").is_file() and not (out / "small.nii.gz").exists()


def test_a_previous_stage_prediction_on_another_grid_is_refused(given_lowres, tmp_path):
    image = read_case(_files("typical"))
    other = read_case(_files("small"))
    write_label_image(np.zeros(other.shape, np.uint8), other, tmp_path / "typical.nii.gz")
    with pytest.raises(MedSegError, match="not on the case's grid"):
        CascadePredictor(given_lowres.stage, None, tmp_path).predict(image, case_name="typical")


def test_prev_stage_predictions_for_a_model_that_is_no_cascade_is_refused():
    with pytest.raises(MedSegError, match="only for a cascade stage"):
        load_predictor(open_model_folder(RESULTS, "3d_lowres"), PredictOptions(device="cpu").validate(), LOWRES_REF)


def test_a_cascade_stage_without_previous_labels_is_refused(given_lowres):
    with pytest.raises(MedSegError, match="needs the 3d_lowres stage"):
        given_lowres.stage.predict(read_case(_files("typical")))
