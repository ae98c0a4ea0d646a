"""Bad nnU-Net v1 models: each is one clear error, and nothing is installed or written.

The models are the real v1 fixture zips (tests/data/nnunet_v1/, made with nnunet 1.7.1), altered the
way broken downloads and mixed-up folders are.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.images import Image
from chimerax.medseg.inference.cascade_predictor import load_predictor
from chimerax.medseg.inference.options import PredictOptions
from chimerax.medseg.inference.predictor import Predictor
from chimerax.medseg.models.install import install_model
from chimerax.medseg.models.model_folder import open_model_folder
from chimerax.medseg.models.safe_pickle import loads_data_pickle

DATA = Path(__file__).resolve().parent.parent / "data" / "nnunet_v1"
BRATS = DATA / "Task901_V1BraTS.zip"
MRI = DATA / "Task902_V1MRI.zip"
EXAMPLE_V2 = Path(__file__).resolve().parents[2] / "src" / "data" / "example_model"


class _WritesMarker:
    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _members(zip_path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(zip_path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _with_one_hot_inputs(checkpoint: bytes, extra: int) -> bytes:
    """A v1 checkpoint whose first convolution takes ``extra`` more input channels (zero weights)."""
    import io

    import torch
    data = torch.load(io.BytesIO(checkpoint), map_location="cpu", weights_only=False)  # our own fixture's file
    key = "conv_blocks_context.0.blocks.0.conv.weight"
    weight = data["state_dict"][key]
    data["state_dict"][key] = torch.cat([weight, weight.new_zeros(weight.shape[0], extra, *weight.shape[2:])], 1)
    out = io.BytesIO()
    torch.save(data, out)
    return out.getvalue()


def _write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _nothing_installed(cache: Path, name: str) -> None:
    models = cache / "models"
    assert not (models / name).exists()
    assert not models.exists() or not [p for p in models.iterdir() if p.name.startswith(f".{name}.")]


def test_a_v1_zip_installs_as_exported(cache):
    folder = install_model("v1brats", BRATS)
    model_dir = folder / "3d_fullres" / "Task901_V1BraTS" / "nnUNetTrainerV2BraTSRegions_DA4_BN__nnUNetPlansv2.1"
    assert (model_dir / "plans.pkl").is_file() and (model_dir / "fold_0" / "model_final_checkpoint.model").is_file()
    assert Predictor.from_folder(folder).model.trainer_name == "nnUNetTrainerV2BraTSRegions_DA4_BN"


def test_missing_plans_pkl(cache, tmp_path):
    members = {n: d for n, d in _members(BRATS).items() if not n.endswith("/plans.pkl")}
    with pytest.raises(MedSegError, match="has no plans.pkl"):
        install_model("broken", _write_zip(tmp_path / "m.zip", members))
    _nothing_installed(cache, "broken")


def test_a_fold_without_its_checkpoint(cache, tmp_path):
    members = {n: d for n, d in _members(MRI).items() if "fold_1/model_final_checkpoint.model" not in n}
    with pytest.raises(MedSegError, match="fold_1 has no .model checkpoint"):
        install_model("broken", _write_zip(tmp_path / "m.zip", members))
    _nothing_installed(cache, "broken")


def test_asking_for_a_fold_the_model_lacks(cache):
    folder = install_model("v1mri", MRI)
    with pytest.raises(MedSegError, match=r"no fold\(s\) 3; available folds: 0, 1"):
        Predictor.from_folder(folder, folds=[3])


@pytest.mark.parametrize("member", ["fold_0/model_final_checkpoint.model.pkl", "plans.pkl"])
def test_a_pkl_with_a_foreign_global_is_refused_and_never_runs(cache, tmp_path, member):
    marker = tmp_path / "marker"
    members = _members(BRATS)
    name = next(n for n in members if n.endswith("/" + member))
    members[name] = pickle.dumps({"name": "nnUNetTrainerV2", "plans": _WritesMarker(marker)})
    with pytest.raises(MedSegError, match=r"Refusing to read .*system"):
        install_model("hostile", _write_zip(tmp_path / "m.zip", members))
    assert not marker.exists()
    _nothing_installed(cache, "hostile")


def test_a_checkpoint_that_does_not_fit_the_plans(cache, tmp_path):
    """fold_0 of the MRI model dropped into the BraTS model (another training, another network)."""
    members = _members(BRATS)
    target = next(n for n in members if n.endswith("fold_0/model_final_checkpoint.model"))
    members[target] = next(d for n, d in _members(MRI).items() if n.endswith("fold_0/model_final_checkpoint.model"))
    with pytest.raises(MedSegError, match=r"does not fit the network .*plans.pkl.*missing"):
        install_model("mixed", _write_zip(tmp_path / "m.zip", members))
    _nothing_installed(cache, "mixed")


def test_a_zip_mixing_v1_and_v2_layouts(cache, tmp_path):
    members = _members(BRATS)
    for path in EXAMPLE_V2.rglob("*"):
        if path.is_file():
            members[f"Dataset900_X/nnUNetTrainer__nnUNetPlans__3d_fullres/{path.relative_to(EXAMPLE_V2)}"] = \
                path.read_bytes()
    with pytest.raises(MedSegError, match="mixes nnU-Net v1 models .* and v2 models"):
        install_model("mixed", _write_zip(tmp_path / "m.zip", members))
    _nothing_installed(cache, "mixed")


def test_an_input_with_another_channel_count_is_refused_before_any_work(cache):
    predictor = Predictor.from_folder(install_model("v1brats", BRATS))
    image = Image(np.ones((2, 8, 8, 8), np.float32), (1.0, 1.0, 1.0), np.eye(4))
    with pytest.raises(MedSegError, match=r"expects 4 channel\(s\) \(T1, T1ce, T2, FLAIR\) but the input has 2"):
        predictor.predict(image)
    assert predictor._network is None  # refused before the network was even built


def _with_trainer_name(zip_path: Path, name: str) -> dict[str, bytes]:
    members = _members(zip_path)
    for member, data in members.items():
        if member.endswith(".model.pkl"):
            members[member] = pickle.dumps({**loads_data_pickle(data), "name": name})
    return members


def test_an_unknown_trainer_is_refused_with_the_known_ones(cache, tmp_path):
    with pytest.raises(MedSegError, match=r"trainer 'LabTrainer'.*Known trainers: .*BraTSRegions_DA4_BN"):
        install_model("lab", _write_zip(tmp_path / "m.zip", _with_trainer_name(MRI, "LabTrainer")))
    _nothing_installed(cache, "lab")


def test_a_labs_subclass_named_after_its_parent_runs_as_the_parent(cache, tmp_path):
    folder = install_model("lab", _write_zip(tmp_path / "m.zip", _with_trainer_name(MRI, "nnUNetTrainerV2_myLab")))
    predictor = Predictor.from_folder(folder, folds=[0])
    assert predictor.model.trainer_name == "nnUNetTrainerV2_myLab" and predictor.mirror_axes == (0, 1, 2)


def test_v1s_fold_all_folder_is_named_all(cache, tmp_path):
    """v1 stores the model trained on every case in ``all/``, not ``fold_all/``."""
    members = {n.replace("/fold_0/", "/all/"): d for n, d in _members(BRATS).items()}
    folder = install_model("v1all", _write_zip(tmp_path / "m.zip", members))
    predictor = Predictor.from_folder(folder)
    assert predictor.model.folds == ["all"] and len(predictor.fold_weights) == 1
    assert predictor.model.checkpoint_path("all").parent.name == "all"


def test_a_zip_with_several_configurations_and_a_cascade_installs_and_runs_3d_fullres(cache, tmp_path):
    """Published v1 zips hold 2d, 3d_lowres, 3d_fullres and 3d_cascade_fullres; the cascade is checked
    for safety and installed; asked for without its 3d_lowres stage, it says what is missing."""
    members = _members(MRI)
    cascade = "nnUNetTrainerV2CascadeFullRes__nnUNetPlansv2.1"
    for name, data in list(members.items()):
        target = name.replace("3d_fullres/", "3d_cascade_fullres/", 1).replace("nnUNetTrainerV2__nnUNetPlansv2.1",
                                                                                cascade)
        if name.endswith(".model.pkl"):
            data = pickle.dumps({**loads_data_pickle(data), "name": "nnUNetTrainerV2CascadeFullRes"})
        if name.endswith(".model"):
            data = _with_one_hot_inputs(data, 2)  # a cascade's first conv also takes labels 1, 2 one-hot
        members[target] = data
    folder = install_model("several", _write_zip(tmp_path / "m.zip", members))
    predictor = Predictor.from_folder(folder, folds=[0])
    assert predictor.model.configuration_name == "3d_fullres"
    cascade_model = open_model_folder(folder, "3d_cascade_fullres")
    assert cascade_model.configuration["previous_stage"] == "3d_lowres"
    with pytest.raises(MedSegError, match=r"needs its 3d_lowres stage .*3d_lowres/Task"):
        load_predictor(cascade_model, PredictOptions(device="cpu").validate())


def test_a_cascade_whose_network_lacks_the_one_hot_inputs_is_refused(cache, tmp_path):
    """A 3d_cascade_fullres checkpoint must take image + one-hot lowres labels; a plain one is refused at install."""
    members = _members(MRI)
    for name, data in list(members.items()):
        target = name.replace("3d_fullres/", "3d_cascade_fullres/", 1)
        members[target] = data
    with pytest.raises(MedSegError, match=r"does not fit the network .* \(4, 2, 1, 3, 3\) in the file"):
        install_model("plaincascade", _write_zip(tmp_path / "m.zip", members))
    _nothing_installed(cache, "plaincascade")
