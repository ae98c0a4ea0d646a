"""A channel may be absent only for models trained with channel dropout (recorded in their checkpoints)."""
import shutil

import numpy as np
import pytest
import torch

from chimerax.medseg.cli import main
from chimerax.medseg.errors import MedSegError
from chimerax.medseg.images import read_case
from chimerax.medseg.inference.predictor import Predictor


@pytest.fixture
def dropout_model(tiny_model, tmp_path):
    folder = tmp_path / "dropout_model"
    shutil.copytree(tiny_model, folder)
    for checkpoint in folder.glob("fold_*/checkpoint_final.pth"):
        data = torch.load(checkpoint, weights_only=False)
        data["medseg"] = {"missing_channels_trained": True}
        torch.save(data, checkpoint)
    return folder


def test_absent_channel_is_zero_after_normalization(dropout_model, case_files):
    predictor = Predictor.from_folder(dropout_model, folds=[0], device="cpu", mirroring=False)
    t1_only = read_case(case_files[:1])
    with pytest.warns(UserWarning, match="T2 are missing"):
        labels = predictor.predict(t1_only, missing_channels=["T2"]).labels
    # the same as giving an all-zero T2 (z-score of zeros is zero)
    full = read_case(case_files)
    full.array[1] = 0
    np.testing.assert_array_equal(labels, predictor.predict(full).labels)


def test_models_without_dropout_refuse(tiny_model, case_files, tmp_path, capsys):
    predictor = Predictor.from_folder(tiny_model, folds=[0], device="cpu")
    with pytest.raises(MedSegError, match="not trained to work without them"):
        predictor.predict(read_case(case_files[:1]), missing_channels=["T2"])
    code = main(["predict", "--quiet", "--device", "cpu", "-m", str(tiny_model), "-i", str(case_files[0]),
                 "-o", str(tmp_path / "out"), "--missing-channels", "T2"])
    assert code == 1 and "--channel-dropout" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(MedSegError, match="Unknown channel"):
        predictor.predict(read_case(case_files[:1]), missing_channels=["FLAIR"])
