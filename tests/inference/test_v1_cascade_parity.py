"""nnU-Net v1 cascades (3d_lowres -> 3d_cascade_fullres) run by MedSeg give nnunet 1.7.1's answers.

The fixture (tests/data/nnunet_v1_cascade/, made by scripts/make_nnunet_v1_cascade_fixtures.py with
the real nnunet 1.7.1: its planner made the low-resolution stage, the published trainer classes built
the networks, ``nnUNet_predict`` made the outputs) holds both stages in v1's layout under ``nnUNet/``,
two cases (typical; cropped, with a wide zero border, where v1's rule of resizing the *uncropped*
lowres map onto the cropped grid matters) and v1's outputs: 3d_lowres, then 3d_cascade_fullres run
with ``-l`` those lowres labels.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from chimerax.medseg.images import read_case, read_image, write_label_image
from chimerax.medseg.inference.cascade_predictor import CascadePredictor, load_predictor
from chimerax.medseg.inference.options import PredictOptions
from chimerax.medseg.models.install import install_model
from chimerax.medseg.models.model_folder import open_model_folder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_v1_parity import compare_with_v1  # noqa: E402  (v1's comparison rules, one place)

DATA = Path(__file__).resolve().parent.parent / "data" / "nnunet_v1_cascade"
OUTPUTS = DATA / "v1_outputs"
CASES = ("cropped",)  # where v1's uncropped rule matters; "typical" runs both stages below


def _image(case: str):
    return read_case(sorted((DATA / "cases").glob(f"{case}_[0-9][0-9][0-9][0-9].nii.gz")))


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The v1 tree (both stages) installed with the real install path into an isolated cache."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDSEG_CACHE_DIR", str(cache))
        yield install_model("v1cascade", DATA / "nnUNet")


def _options(**kw) -> PredictOptions:
    return PredictOptions(device="cpu", configuration="3d_cascade_fullres", **kw).validate()


@pytest.mark.parametrize("case", CASES)
def test_cascade_with_v1s_lowres_labels_matches_v1(installed, case):
    predictor = load_predictor(open_model_folder(installed, "3d_cascade_fullres"), _options(),
                               OUTPUTS / "3d_lowres")
    assert isinstance(predictor, CascadePredictor)
    assert predictor.model.trainer_name == "nnUNetTrainerV2CascadeFullRes"
    prediction = predictor.predict(_image(case), save_probabilities=True, case_name=case)
    reference = read_image(OUTPUTS / "3d_cascade_fullres" / f"{case}.nii.gz").array[0]
    for value in (1, 2):
        assert (reference == value).sum() > 50, "v1 must predict every label for the test to mean much"
    compare_with_v1(prediction, OUTPUTS / "3d_cascade_fullres", case, region_based=False)


def test_both_stages_run_here_match_v1(installed):
    """As nnUNet_predict -m 3d_cascade_fullres without -l: the lowres stage first, then the cascade."""
    predictor = load_predictor(open_model_folder(installed, "3d_cascade_fullres"), _options())
    assert isinstance(predictor, CascadePredictor) and predictor.previous is not None
    case = "typical"
    lowres = predictor.previous.predict(_image(case), save_probabilities=True)
    compare_with_v1(lowres, OUTPUTS / "3d_lowres", case, region_based=False)
    prediction = predictor.predict(_image(case))
    reference = read_image(OUTPUTS / "3d_cascade_fullres" / f"{case}.nii.gz").array[0]
    for value in (1, 2):
        a, b = reference == value, prediction.labels == value
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.99


def test_the_previous_stage_input_changes_the_answer(installed, tmp_path):
    """The parity above means something: with an empty previous stage the cascade answers differently."""
    image = _image("typical")
    write_label_image(np.zeros(image.shape, np.uint8), image, tmp_path / "typical.nii.gz")
    blind = load_predictor(open_model_folder(installed, "3d_cascade_fullres"), _options(), tmp_path)
    labels = blind.predict(image, case_name="typical").labels
    reference = read_image(OUTPUTS / "3d_cascade_fullres" / "typical.nii.gz").array[0]
    dice = [2 * ((reference == v) & (labels == v)).sum() / ((reference == v).sum() + (labels == v).sum())
            for v in (1, 2)]
    assert min(dice) < 0.9
