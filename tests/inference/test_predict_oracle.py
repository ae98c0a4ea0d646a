"""Our predictor against the real nnU-Net predictor, live, on tiny nnU-Net-built models."""
import numpy as np
import pytest
import torch
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

from chimerax.medseg.images import read_case
from chimerax.medseg.inference.predictor import Predictor


def _nnunet(model, files, folds, mirroring):
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirroring,
                                device=torch.device("cpu"), verbose=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(model), use_folds=folds, checkpoint_name="checkpoint_final.pth")
    image, properties = SimpleITKIO().read_images([str(f) for f in files])
    return predictor.predict_single_npy_array(image, properties, None, None, True)


def _dice(a, b):
    return 2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


@pytest.mark.parametrize("folds,mirroring", [((0,), True), ((0, 1), False)])
def test_same_labels_and_probabilities_as_nnunet(tiny_model, case_files, folds, mirroring):
    labels, probabilities = _nnunet(tiny_model, case_files, folds, mirroring)
    ours = Predictor.from_folder(tiny_model, folds=folds, device="cpu", mirroring=mirroring).predict(
        read_case(case_files), save_probabilities=True)
    assert ours.labels.shape == labels.shape
    for value in (1, 2):
        assert (labels == value).sum() > 50, "the oracle must predict every label for the test to mean much"
        assert _dice(ours.labels == value, labels == value) >= 0.99
    assert np.abs(ours.probabilities - probabilities).max() <= 0.02


def test_region_model_matches_nnunet(tiny_region_model, case_files):
    labels, probabilities = _nnunet(tiny_region_model, case_files, (0,), True)
    ours = Predictor.from_folder(tiny_region_model, device="cpu").predict(read_case(case_files),
                                                                          save_probabilities=True)
    assert set(np.unique(labels)) == {0, 1, 2}
    for value in (1, 2):
        assert _dice(ours.labels == value, labels == value) >= 0.99
    assert np.abs(ours.probabilities - probabilities).max() <= 0.02
