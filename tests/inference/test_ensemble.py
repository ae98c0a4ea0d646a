"""Ensembles of configurations (`medseg predict -m A -m B`) against nnU-Net's own ensembling, the ensemble's
postprocessing, and members that do not belong together."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from inference_helpers import make_model
from nnunetv2.ensembling.ensemble import merge_files
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.postprocessing.remove_connected_components import remove_all_but_largest_component_from_segmentation
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from chimerax.medseg.cli import main
from chimerax.medseg.inference.ensemble_layout import ensemble_folder

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "nnunet"
MODELS = [FIXTURES / "3d_fullres", FIXTURES / "2d"]  # Dataset901: a trained 3d_fullres and an untrained 2d
CASE = [FIXTURES / "cases" / "typical_0000.nii.gz", FIXTURES / "cases" / "typical_0001.nii.gz"]


def _labels(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj).transpose(2, 1, 0)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1))


def _run(models, out: Path, *extra) -> int:
    args = ["predict", "--quiet", "--device", "cpu", "--no-mirroring"]
    for model in models:
        args += ["-m", str(model)]
    return main([*args, "-i", *map(str, CASE), "-o", str(out), *map(str, extra)])


def _predict(models, out: Path, *extra) -> Path:
    assert _run(models, out, *extra) == 0
    return out


def _refused(capsys, models, out: Path, pattern: str, *extra) -> None:
    """One clear error (no traceback), and nothing written."""
    assert _run(models, out, *extra) == 1
    err = capsys.readouterr().err
    assert re.search(pattern, err), err
    assert "Traceback" not in err
    assert not out.exists()


@pytest.fixture(scope="module")
def nnunet_ensemble(tmp_path_factory) -> Path:
    """`nnUNetv2_predict --save_probabilities` for each member, then what `nnUNetv2_ensemble` runs per case
    (its merge_files; ensemble_folders only hands that to a process pool)."""
    root = tmp_path_factory.mktemp("nnunet")
    folders = []
    for model in MODELS:
        out = root / model.name
        out.mkdir()
        predictor = nnUNetPredictor(tile_step_size=0.5, use_mirroring=False, device=torch.device("cpu"),
                                    verbose=False, allow_tqdm=False)
        predictor.initialize_from_trained_model_folder(str(model), use_folds=(0,),
                                                       checkpoint_name="checkpoint_final.pth")
        predictor.predict_from_files_sequential([[str(f) for f in CASE]], str(out), save_probabilities=True)
        folders.append(out)
    plans = PlansManager(str(folders[0] / "plans.json"))
    dataset_json = json.loads((folders[0] / "dataset.json").read_text())
    (root / "ensemble").mkdir()
    merge_files([str(f / "typical.npz") for f in folders], str(root / "ensemble" / "typical"), ".nii.gz",
                plans.image_reader_writer_class(), plans.get_label_manager(dataset_json), save_probabilities=True)
    return root


@pytest.fixture(scope="module")
def ours(tmp_path_factory) -> Path:
    return _predict(MODELS, tmp_path_factory.mktemp("ours") / "typical.nii.gz", "--save-probabilities")


def test_same_labels_and_probabilities_as_nnunet_ensemble(nnunet_ensemble, ours):
    theirs, labels = _labels(nnunet_ensemble / "ensemble" / "typical.nii.gz"), _labels(ours)
    for value in (1, 2):
        assert (theirs == value).sum() > 50, "nnU-Net's ensemble must find every label for the test to mean much"
        dice = _dice(labels == value, theirs == value)
        print(f"label {value}: Dice {dice:.4f} against nnUNetv2_ensemble")
        assert dice >= 0.99
    averaged = np.load(nnunet_ensemble / "ensemble" / "typical.npz")["probabilities"]
    np.testing.assert_allclose(np.load(ours.with_name("typical.npz"))["probabilities"], averaged, atol=0.02)
    for member in MODELS:  # the members disagree, so the test sees whether both were averaged
        alone = _labels(nnunet_ensemble / member.name / "typical.nii.gz")
        assert _dice(alone == 1, theirs == 1) < 0.95


def _results_folder(tmp_path: Path) -> list[Path]:
    """The fixture models laid out as nnU-Net's results folder (<dataset>/<Trainer>__<Plans>__<configuration>)."""
    members = []
    for model in MODELS:
        target = tmp_path / "Dataset901_ParityPhantom" / f"nnUNetTrainer__nnUNetPlans__{model.name}"
        shutil.copytree(model, target)
        members.append(target)
    return members


def test_postprocess_applies_the_ensembles_choice_not_a_members(ours, tmp_path):
    members = _results_folder(tmp_path)
    steps = {"postprocessing_fns": ["remove_all_but_largest_component_from_segmentation"],
             "postprocessing_kwargs": [{"labels_or_regions": 2, "background_label": 0}]}
    chosen = ensemble_folder(members[::-1], ["0"]) / "postprocessing.json"  # the members in the other order
    chosen.parent.mkdir(parents=True)
    chosen.write_text(json.dumps(steps))
    own = members[0] / "crossval_results_folds_0" / "postprocessing.json"  # the 3d_fullres member's own: nothing
    own.parent.mkdir()
    own.write_text(json.dumps({"postprocessing_fns": [], "postprocessing_kwargs": []}))
    labels = _labels(_predict(members, tmp_path / "pp.nii.gz", "--postprocess"))
    plain = _labels(ours)
    expected = remove_all_but_largest_component_from_segmentation(plain, 2)  # nnU-Net's own step
    assert (expected != plain).sum() > 0, "the ensemble's core must have stray islands for the test to mean much"
    np.testing.assert_array_equal(labels, expected)


def test_postprocess_without_a_choice_for_the_ensemble_is_refused(tmp_path, capsys):
    members = _results_folder(tmp_path)
    own = members[0] / "crossval_results_folds_0" / "postprocessing.json"
    own.parent.mkdir()
    own.write_text(json.dumps({"postprocessing_fns": [], "postprocessing_kwargs": []}))
    _refused(capsys, members, tmp_path / "out.nii.gz", "no postprocessing.json for the ensemble", "--postprocess")


def _edited_copy(source: Path, target: Path, file: str, edit) -> Path:
    shutil.copytree(source, target)
    data = json.loads((target / file).read_text())
    edit(data)
    (target / file).write_text(json.dumps(data))
    return target


def _broken_first_member(tmp_path: Path) -> Path:
    """A first member whose checkpoint cannot be read: a member check that came after loading would say so."""
    first = tmp_path / "first" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    shutil.copytree(MODELS[0], first)
    (first / "fold_0" / "checkpoint_final.pth").write_bytes(b"not a checkpoint")
    return first


@pytest.mark.parametrize("file, edit, message", [
    ("plans.json", lambda d: d.update(dataset_name="Dataset903_Other"), "come from different datasets"),
    ("dataset.json", lambda d: d.update(labels={"background": 0, "core": 1, "edema": 2}), "predict different labels"),
    ("dataset.json", lambda d: d["labels"].update(necrosis=3), "predict different labels"),
    ("dataset.json", lambda d: d.update(channel_names={"0": "T2", "1": "T1"}), "take different input channels"),
])
def test_members_that_do_not_belong_together_are_refused_before_any_work(tmp_path, capsys, file, edit, message):
    other = _edited_copy(MODELS[1], tmp_path / "other" / "nnUNetTrainer__nnUNetPlans__2d", file, edit)
    _refused(capsys, [_broken_first_member(tmp_path), other], tmp_path / "out", message)


@pytest.mark.parametrize("extra, message", [((), "Ensemble member .*nowhere.*not found"),
                                            (("--adaptive",), None)])
def test_a_missing_member_or_an_impossible_option_is_one_error(tmp_path, capsys, extra, message):
    members = [_broken_first_member(tmp_path), MODELS[1]]
    if message is not None:
        members.append(tmp_path / "nowhere")
    _refused(capsys, members, tmp_path / "out", message or "--adaptive cannot be combined with an ensemble", *extra)


def test_the_same_model_twice_is_refused(tmp_path, capsys):
    _refused(capsys, [MODELS[0], MODELS[0]], tmp_path / "out", "given more than once")


def test_members_named_as_configurations_of_one_trained_dataset(ours, tmp_path, monkeypatch):
    """`-m 901:3d_fullres -m Dataset901_ParityPhantom:2d`: the configurations in nnU-Net's results folder."""
    _results_folder(tmp_path)
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    labels = _labels(_predict(["901:3d_fullres", "Dataset901_ParityPhantom:2d"], tmp_path / "named.nii.gz"))
    np.testing.assert_array_equal(labels, _labels(ours))


def test_a_configuration_the_dataset_lacks_is_one_error(tmp_path, capsys, monkeypatch):
    _results_folder(tmp_path)
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    _refused(capsys, ["901:3d_fullres", "901:3d_lowres"], tmp_path / "out", "Ensemble member 901:3d_lowres")


def test_region_models_average_sigmoids_as_nnunet_does(tmp_path, case_files):
    """Two region models of one dataset (seeds 0 and 3): sigmoids averaged, then regions in their class order."""
    labels = {"background": 0, "whole": [1, 2], "core": [2]}
    members = [make_model(tmp_path / f"seed{seed}", labels, regions_class_order=[1, 2], seed=seed) for seed in (0, 3)]
    folders = []
    for i, model in enumerate(members):
        predictor = nnUNetPredictor(tile_step_size=0.5, use_mirroring=False, device=torch.device("cpu"),
                                    verbose=False, allow_tqdm=False)
        predictor.initialize_from_trained_model_folder(str(model), use_folds=(0,),
                                                       checkpoint_name="checkpoint_final.pth")
        folders.append(tmp_path / f"nnunet{i}")
        folders[-1].mkdir()
        predictor.predict_from_files_sequential([[str(f) for f in case_files]], str(folders[-1]),
                                                save_probabilities=True)
    plans = PlansManager(str(folders[0] / "plans.json"))
    (tmp_path / "ensemble").mkdir()
    merge_files([str(f / "case.npz") for f in folders], str(tmp_path / "ensemble" / "case"), ".nii.gz",
                plans.image_reader_writer_class(), plans.get_label_manager(json.loads((folders[0] / "dataset.json")
                                                                                     .read_text())))
    theirs = _labels(tmp_path / "ensemble" / "case.nii.gz")
    args = ["predict", "--quiet", "--device", "cpu", "--no-mirroring", "-m", str(members[0]), "-m", str(members[1])]
    assert main([*args, "-i", *map(str, case_files), "-o", str(tmp_path / "ours.nii.gz")]) == 0
    ours = _labels(tmp_path / "ours.nii.gz")
    for value in (1, 2):
        assert (theirs == value).sum() > 20, "nnU-Net's ensemble must find every region for the test to mean much"
        assert _dice(ours == value, theirs == value) >= 0.99
    alone = [_dice(_labels(f / "case.nii.gz") > 0, theirs > 0) for f in folders]
    assert min(alone) < 0.97, f"the members must disagree for the test to see both averaged (Dice {alone})"


def test_an_ensemble_draws_its_preview(tmp_path):
    picture = tmp_path / "preview.png"
    _predict(MODELS, tmp_path / "typical.nii.gz", "--preview", picture)
    assert picture.stat().st_size > 10_000 and picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
