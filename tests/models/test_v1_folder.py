"""Reading nnU-Net v1 model folders into the engine's one model description."""
from __future__ import annotations

import copy
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.models.model_folder import open_model_folder
from chimerax.medseg.models.safe_pickle import load_data_pickle

DATA = Path(__file__).resolve().parent.parent / "data" / "nnunet_v1"
MODEL = "Task902_V1MRI/nnUNetTrainerV2__nnUNetPlansv2.1"


def _two_stage_model(root: Path) -> Path:
    """The MRI fixture as 3d_lowres and 3d_fullres of plans with two stages (stage 1 finer, bigger patch)."""
    with zipfile.ZipFile(DATA / "Task902_V1MRI.zip") as zf:
        zf.extractall(root / "unpacked")
    source = root / "unpacked" / "3d_fullres" / MODEL
    plans = load_data_pickle(source / "plans.pkl")
    fine = copy.deepcopy(plans["plans_per_stage"][0])
    fine["patch_size"] = np.array([12, 48, 40])
    fine["current_spacing"] = np.array([3.0, 1.0, 1.0])
    plans["plans_per_stage"] = {0: plans["plans_per_stage"][0], 1: fine}
    for configuration in ("3d_lowres", "3d_fullres"):
        target = root / "nnUNet" / configuration / MODEL
        (target / "fold_0").mkdir(parents=True)
        (target / "plans.pkl").write_bytes(pickle.dumps(plans))
        for f in (source / "fold_0").iterdir():
            (target / "fold_0" / f.name).write_bytes(f.read_bytes())
    return root / "nnUNet"


def test_lowres_and_fullres_read_their_own_stage(tmp_path):
    root = _two_stage_model(tmp_path)
    lowres = open_model_folder(root, "3d_lowres")
    assert lowres.configuration_name == "3d_lowres" and lowres.configuration["patch_size"] == [10, 40, 32]
    # the fold's .model.pkl says which stage its trainer ran on (stage 0 here); it wins over the folder's place
    fullres = open_model_folder(root / "3d_fullres" / MODEL)
    assert fullres.configuration_name == "3d_fullres" and fullres.configuration["patch_size"] == [10, 40, 32]


def test_without_the_fold_record_fullres_takes_the_last_stage(tmp_path):
    root = _two_stage_model(tmp_path)
    folder = root / "3d_fullres" / MODEL
    (folder / "fold_0" / "model_final_checkpoint.model.pkl").unlink()
    model = open_model_folder(folder)
    assert model.configuration["patch_size"] == [12, 48, 40] and model.configuration["spacing"] == [3.0, 1.0, 1.0]


def test_several_models_default_to_3d_fullres_and_a_damaged_plans_is_one_error(tmp_path):
    root = _two_stage_model(tmp_path)
    assert open_model_folder(root).configuration_name == "3d_fullres"
    plans = root / "3d_fullres" / MODEL / "plans.pkl"
    plans.write_bytes(pickle.dumps({"plans_per_stage": {0: {"patch_size": [4, 4, 4]}}}))
    with pytest.raises(MedSegError, match="plans lack or garble"):
        open_model_folder(root / "3d_fullres" / MODEL)
