"""Training a cascade as nnU-Net does: 3d_lowres folds write their validation predictions for the next
stage, 3d_cascade_fullres trains on image + one-hot previous stage, and the result loads in our
predictor and in nnU-Net's."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.images import read_case, read_image, write_label_image
from chimerax.medseg.inference.cascade_predictor import CascadePredictor, load_predictor
from chimerax.medseg.inference.options import PredictOptions
from chimerax.medseg.models.checkpoint import load_checkpoint
from chimerax.medseg.models.model_folder import open_model_folder
from chimerax.medseg.training.run import train
from chimerax.medseg.training.trainer import TrainingOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "planning"))
from planning_helpers import make_dataset  # noqa: E402

CASCADE = "nnUNetTrainer__nnUNetPlans__3d_cascade_fullres"
LOWRES = "nnUNetTrainer__nnUNetPlans__3d_lowres"


def _options() -> TrainingOptions:
    return TrainingOptions(epochs=1, iterations_per_epoch=2, validation_iterations=1, num_workers=0, device="cpu",
                           save_every=1, validation_mirroring=False, num_folds=2)


@pytest.fixture(scope="module")
def cascade_data(tmp_path_factory) -> dict:
    """Six cases planned by our planner with a small memory target, so that it plans a cascade."""
    from chimerax.medseg.planning.run import plan_dataset
    root = tmp_path_factory.mktemp("cascade")
    raw = make_dataset(root / "raw", 43, "Casc", [(28, 36, 28)] * 6, [(1.0, 1.0, 1.0)] * 6, ["T1"], num_labels=2,
                       seed=43)
    pre = root / "preprocessed" / raw.name
    result = plan_dataset(str(raw), configurations=["3d_lowres", "3d_fullres"], num_processes=1,
                          foreground_samples=1e4, output=str(pre), verify=False, gpu_memory_gb=0.001,
                          base_features=4, max_features=16)
    assert "3d_cascade_fullres" in result["plans"]["configurations"], "the planner must plan a cascade here"
    return {"raw": raw, "preprocessed": pre, "results": root / "results"}


def _train(data: dict, configuration: str, folds: list[str]) -> Path:
    return train(str(data["raw"]), configuration, folds, _options(), output=data["results"],
                 preprocessed=data["preprocessed"], report=lambda text: None)


@pytest.fixture(scope="module")
def trained_cascade(cascade_data) -> Path:
    _train(cascade_data, "3d_lowres", ["0", "1"])
    return _train(cascade_data, "3d_cascade_fullres", ["0"])


def test_cascade_training_without_the_lowres_predictions_is_refused_and_writes_nothing(cascade_data, tmp_path):
    alone = {**cascade_data, "results": tmp_path / "results"}  # no 3d_lowres stage trained there
    with pytest.raises(MedSegError) as err:
        _train(alone, "3d_cascade_fullres", ["0"])
    message = str(err.value)
    assert "3d_lowres" in message and "medseg train" in message and "-f 0 1 2 3 4" in message
    assert not (alone["results"] / CASCADE).exists()


def test_lowres_folds_write_every_case_for_the_next_stage(trained_cascade, cascade_data):
    written = cascade_data["results"] / LOWRES / "predicted_next_stage" / "3d_cascade_fullres"
    names = sorted(p.name[:-4] for p in written.glob("*.npz"))
    assert names == [f"case{i:03d}" for i in range(6)]
    seg = np.load(written / "case000.npz")["seg"]
    data = np.load(cascade_data["preprocessed"] / "nnUNetPlans_3d_fullres" / "case000.npy", mmap_mode="r")
    assert seg.shape == data.shape[1:] and set(np.unique(seg)) <= {0, 1, 2}


def test_trained_cascade_has_image_plus_one_hot_inputs(trained_cascade):
    checkpoint = load_checkpoint(trained_cascade / "fold_0" / "checkpoint_final.pth")
    first = next(w for k, w in checkpoint["network_weights"].items() if k.endswith("convs.0.conv.weight"))
    assert first.shape[1] == 1 + 2  # T1 + one-hot labels 1 and 2
    assert checkpoint["init_args"]["configuration"] == "3d_cascade_fullres"


def test_trained_cascade_loads_and_predicts_in_ours_and_nnunets(trained_cascade, cascade_data, tmp_path):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    files = sorted((cascade_data["raw"] / "imagesTr").glob("case001_*.nii.gz"))
    image = read_case(files)
    ours = load_predictor(open_model_folder(trained_cascade), PredictOptions(folds=["0"], device="cpu",
                                                                            mirroring=False).validate())
    assert isinstance(ours, CascadePredictor) and ours.previous is not None
    lowres = ours.previous.predict(image).labels
    ours_prediction = ours.stage.predict(image, save_probabilities=True, previous_stage=lowres)
    # nnU-Net's predictor on our folder, fed our lowres stage's prediction as -prev_stage_predictions
    prev = tmp_path / "prev"
    write_label_image(lowres, image, prev / "case001.nii.gz")
    (tmp_path / "out").mkdir()
    theirs = nnUNetPredictor(device=torch.device("cpu"), verbose=False, allow_tqdm=False, use_mirroring=False)
    theirs.initialize_from_trained_model_folder(str(trained_cascade), use_folds=(0,),
                                                checkpoint_name="checkpoint_final.pth")
    theirs.predict_from_files_sequential([[str(f) for f in files]], [str(tmp_path / "out" / "case001")],
                                         save_probabilities=True, folder_with_segs_from_prev_stage=str(prev))
    theirs_labels = read_image(tmp_path / "out" / "case001.nii.gz").array[0]
    assert ours_prediction.labels.shape == theirs_labels.shape
    assert (ours_prediction.labels == theirs_labels).mean() > 0.999
    theirs_probabilities = np.load(tmp_path / "out" / "case001.npz")["probabilities"]
    assert np.abs(ours_prediction.probabilities - theirs_probabilities).max() <= 0.02


def test_previous_stage_perturbations_keep_one_hot_and_are_reproducible():
    """nnU-Net's cascade augmentation: sometimes a label's map is dilated/eroded/opened/closed or loses a
    component; the maps stay one-hot (a voxel gained by one label is lost by the others)."""
    from chimerax.medseg.training.cascade import perturb_previous_stage
    labels = np.zeros((20, 20, 20), np.int8)
    labels[4:12, 4:12, 4:12] = 1
    labels[8:10, 8:10, 8:10] = 2
    labels[15:18, 15:18, 15:18] = 1  # a second, small component of label 1
    onehot = np.stack([labels == 1, labels == 2])
    changed = 0
    for seed in range(40):
        out = perturb_previous_stage(onehot, np.random.default_rng(seed))
        assert out.shape == onehot.shape and set(np.unique(out)) <= {0.0, 1.0}
        assert out.sum(0).max() <= 1  # never two labels on one voxel
        assert np.array_equal(out, perturb_previous_stage(onehot, np.random.default_rng(seed)))
        changed += not np.array_equal(out > 0, onehot)
    assert 5 <= changed <= 35  # applied to a share of the samples, as nnU-Net's probabilities say
