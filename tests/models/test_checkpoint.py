"""Checkpoints load without running pickled code."""
import os
import pickle

import numpy as np
import pytest
import torch

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.models.checkpoint import load_checkpoint


def _nnunet_like_checkpoint(path):
    torch.save({
        "network_weights": {"w": torch.arange(6.0).reshape(2, 3)},
        "init_args": {"plans": {"name": "x"}, "configuration": "3d_fullres", "fold": 0},
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": (0, 1, 2),
        "current_epoch": 3,
        "logging": {"mean_fg_dice": [np.float64(0.5), np.float32(0.25)], "lrs": [0.01]},
        "_best_ema": np.float64(0.7),
    }, path)


def test_genuine_checkpoint_with_numpy_scalars_loads(tmp_path):
    path = tmp_path / "checkpoint_final.pth"
    _nnunet_like_checkpoint(path)
    data = load_checkpoint(path)
    assert torch.equal(data["network_weights"]["w"], torch.arange(6.0).reshape(2, 3))
    assert data["logging"]["mean_fg_dice"][0] == 0.5
    assert float(data["_best_ema"]) == pytest.approx(0.7)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": {}, "payload": _Exploit(marker)}, path)
    with pytest.raises(MedSegError, match="could run code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_malicious_plain_pickle_file_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint_final.pth"
    with open(path, "wb") as handle:  # legacy (non-zip) torch format: a bare pickle
        pickle.dump({"network_weights": {}, "payload": _Exploit(marker)}, handle)
    with pytest.raises(MedSegError):
        load_checkpoint(path)
    assert not marker.exists()


def test_garbage_and_missing_files_give_clear_errors(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(MedSegError, match="junk.pth"):
        load_checkpoint(junk)
    with pytest.raises(MedSegError, match="not found"):
        load_checkpoint(tmp_path / "absent.pth")


def test_checkpoint_without_weights_is_refused(tmp_path):
    path = tmp_path / "c.pth"
    torch.save({"something": 1}, path)
    with pytest.raises(MedSegError, match="network_weights"):
        load_checkpoint(path)
