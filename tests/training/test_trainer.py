"""The trainer end to end on tiny data: a real nnU-Net v2 model folder, logs, checkpoints, resume."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from training_helpers import cli_env, run_cli, train_args

from chimerax.medseg.images import read_case
from chimerax.medseg.inference.predictor import Predictor
from chimerax.medseg.models.checkpoint import load_checkpoint


def test_model_folder_loads_in_our_predictor_and_nnunets(trained_model, tiny_data):
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    assert trained_model.name == "nnUNetTrainer__nnUNetPlans__3d_fullres"
    for name in ("plans.json", "dataset.json", "dataset_fingerprint.json", "fold_0/checkpoint_final.pth",
                 "fold_0/checkpoint_best.pth", "fold_0/progress.png", "fold_0/validation/summary.json"):
        assert (trained_model / name).is_file(), name
    assert not (trained_model / "fold_0" / "checkpoint_latest.pth").exists()  # removed at the end, as nnU-Net
    files = sorted((tiny_data["raw"] / "imagesTr").glob("case001_*.nii.gz"))
    ours = Predictor.from_folder(trained_model, folds=[0], device="cpu", mirroring=False).predict(
        read_case(files)).labels
    theirs_predictor = nnUNetPredictor(device=torch.device("cpu"), verbose=False, allow_tqdm=False,
                                       use_mirroring=False)
    theirs_predictor.initialize_from_trained_model_folder(str(trained_model), use_folds=(0,),
                                                          checkpoint_name="checkpoint_final.pth")
    image, props = SimpleITKIO().read_images([str(f) for f in files])
    theirs = theirs_predictor.predict_single_npy_array(image, props, None, None, False)
    assert ours.shape == theirs.shape
    assert (ours == theirs).mean() > 0.999


def test_log_records_per_class_dice_and_decaying_lr(trained_model):
    log = json.loads((trained_model / "fold_0" / "training_log.json").read_text())
    assert log["class_names"] == ["class1", "class2"]
    epochs = log["epochs"]
    assert [r["epoch"] for r in epochs] == [0, 1]
    assert epochs[0]["lr"] == pytest.approx(0.01) and epochs[1]["lr"] == pytest.approx(0.01 * 0.5 ** 0.9)
    for r in epochs:
        assert len(r["pseudo_dice"]) == 2 and np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"])
    text = (trained_model / "fold_0" / "training_log.txt").read_text()
    assert "pseudo-Dice [class1" in text and "lr 0.01" in text
    checkpoint = load_checkpoint(trained_model / "fold_0" / "checkpoint_final.pth")  # loads without pickled code
    assert checkpoint["current_epoch"] == 2 and checkpoint["trainer_name"] == "nnUNetTrainer"
    assert checkpoint["init_args"]["configuration"] == "3d_fullres"
    assert len(checkpoint["logging"]["train_losses"]) == 2


def test_validation_summary_has_dice_and_hd95_per_class(trained_model):
    summary = json.loads((trained_model / "fold_0" / "validation" / "summary.json").read_text())
    assert set(summary["mean"]) == {"1", "2"}
    assert {"Dice", "HD95"} <= set(summary["mean"]["1"])
    assert len(summary["metric_per_case"]) >= 1
    for entry in summary["metric_per_case"]:
        assert Path(entry["prediction_file"]).is_file()


def _weights(path: Path) -> dict:
    return load_checkpoint(path)["network_weights"]


def _assert_same_weights(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst <= atol, f"weights differ by {worst}"


def test_continue_after_sigkill_keeps_the_same_schedule(tiny_data, tmp_path):
    epochs = ["--epochs", "4", "--iterations", "2", "--val-iterations", "1", "--save-every", "1", "--no-validation"]
    reference = run_cli(train_args({**tiny_data, "results": tmp_path / "straight"}, *epochs))
    assert reference.returncode == 0, reference.stderr
    straight = tmp_path / "straight" / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_0"

    killed_root = tmp_path / "killed"
    fold = killed_root / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_0"
    args = train_args({**tiny_data, "results": killed_root}, *epochs)
    proc = subprocess.Popen([sys.executable, "-m", "chimerax.medseg.cli", *args], env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (fold / "checkpoint_latest.pth").is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run must be killed mid-training for this test to mean much"
    assert not (fold / "checkpoint_final.pth").exists()
    stopped_at = load_checkpoint(fold / "checkpoint_latest.pth")["current_epoch"]
    assert 1 <= stopped_at < 4

    refused = run_cli(args)  # an interrupted model is not replaced silently either
    assert refused.returncode == 1 and "already holds an interrupted model" in refused.stderr
    resumed = run_cli(args + ["--continue"])
    assert resumed.returncode == 0, resumed.stderr
    assert f"Continuing from checkpoint_latest.pth at epoch {stopped_at}" in resumed.stdout
    _assert_same_weights(_weights(straight / "checkpoint_final.pth"), _weights(fold / "checkpoint_final.pth"), 1e-5)
    log = json.loads((fold / "training_log.json").read_text())["epochs"]
    assert [r["epoch"] for r in log] == list(range(4))
    straight_log = json.loads((straight / "training_log.json").read_text())["epochs"]
    assert [r["lr"] for r in log] == pytest.approx([r["lr"] for r in straight_log])


def test_train_command_rejects_unplanned_dataset(tmp_path):
    result = run_cli(["train", str(tmp_path), "--device", "cpu"])
    assert result.returncode != 0
    assert "medseg: error:" in result.stderr and "Traceback" not in result.stderr
