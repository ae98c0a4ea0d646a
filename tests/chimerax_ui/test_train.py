"""``segment train`` inside headless ChimeraX: a real training process, its log, status, stop, install."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from training_helpers import plan_tiny_dataset  # noqa: E402


@pytest.fixture
def planned(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    data = plan_tiny_dataset(tmp_path / "data", dataset_id=43, name="ChimeraBlob", cases=4)
    data["options"] = (f"--preprocessed {data['preprocessed']} -o {data['results']} --workers 0 "
                       "--val-iterations 1 --no-validation")
    return data


def test_train_logs_progress_and_installs_a_usable_model(planned, run, log, add_volume):
    training = run(f"segment train dataset {planned['raw']} epochs 2 iterations 2 device cpu name chimerablob "
                   f"options '{planned['options']}'")
    assert training.returncode == 0, "\n".join(training.lines)
    text = log.text()
    assert "epoch 0:" in text and "epoch 1:" in text and "pseudo-Dice" in text
    assert "Model installed as 'chimerablob'" in text
    nii = nib.load(str(planned["raw"] / "imagesTr" / "case000_0000.nii.gz"))
    volume = add_volume(np.asanyarray(nii.dataobj).transpose(2, 1, 0).astype(np.float32), name="case000")
    job = run(f"segment chimerablob #{volume.id_string} device cpu fast true")
    assert job.labels is not None and job.labels.shape == volume.full_matrix().shape


def test_train_status_and_stop(planned, run, log, session):
    training = run(f"segment train dataset {planned['raw']} epochs 500 iterations 2 device cpu name stopped "
                   f"wait false options '{planned['options']}'")
    deadline = time.time() + 120
    while not any(line.startswith("epoch ") for line in training.lines) and time.time() < deadline:
        time.sleep(0.1)
    run("segment train status")
    assert "Training running: epoch" in log.text()
    run("segment train stop")
    assert not training.running and training.returncode != 0
    assert "Training stopped" in log.text()
    run("segment train status")
    assert "Training stopped" in log.text()
    assert not (Path(planned["results"]) / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_0" /
                "checkpoint_final.pth").exists()
