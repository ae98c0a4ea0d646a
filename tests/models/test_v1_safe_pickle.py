"""The data-only unpickler for nnU-Net v1 .pkl files, and safe loading of v1 .model checkpoints."""
from __future__ import annotations

import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.models.checkpoint import load_checkpoint
from chimerax.medseg.models.safe_pickle import load_data_pickle, loads_data_pickle


class _WritesMarker:
    """Unpickling this calls os.system: what a hostile pickle does."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _plans_like() -> dict:
    return {"plans_per_stage": OrderedDict({0: {"patch_size": np.array([28, 40, 28]), "batch_size": 2,
                                                "current_spacing": np.array([3.5, 3.5, 3.5])}}),
            "normalization_schemes": OrderedDict({0: "nonCT"}), "num_classes": np.int64(3),
            "mean": np.float64(1.25), "dtype": np.dtype("float32"), "pools": [(2, 2, 2), [1, 2, 1]], "flag": True}


@pytest.mark.parametrize("protocol", [2, 4, pickle.HIGHEST_PROTOCOL])
def test_plain_plans_data_round_trips(protocol):
    original = _plans_like()
    loaded = loads_data_pickle(pickle.dumps(original, protocol=protocol))
    assert isinstance(loaded["plans_per_stage"], OrderedDict)
    np.testing.assert_array_equal(loaded["plans_per_stage"][0]["patch_size"],
                                  original["plans_per_stage"][0]["patch_size"])
    assert loaded["num_classes"] == 3 and isinstance(loaded["num_classes"], np.integer)
    assert loaded["mean"] == 1.25 and loaded["dtype"] == np.float32
    assert loaded["pools"] == original["pools"] and loaded["normalization_schemes"][0] == "nonCT"


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_hostile_pkl_is_refused_naming_the_global_and_never_runs(tmp_path, protocol):
    marker = tmp_path / "marker"
    path = tmp_path / "plans.pkl"
    path.write_bytes(pickle.dumps({"plans_per_stage": {0: _WritesMarker(marker)}}, protocol=protocol))
    with pytest.raises(MedSegError, match=r"system.*could run code"):
        load_data_pickle(path)
    assert not marker.exists()


def test_other_callables_and_classes_are_refused(tmp_path):
    for payload in (eval, OrderedDict.fromkeys, np.load):
        with pytest.raises(MedSegError, match="Refusing"):
            loads_data_pickle(pickle.dumps({"x": payload}))


def test_garbage_is_one_clear_error():
    with pytest.raises(MedSegError, match="not a readable data pickle"):
        loads_data_pickle(b"\x80\x04not a pickle at all")


def test_hostile_v1_model_checkpoint_is_refused_and_never_runs(tmp_path):
    import torch
    marker = tmp_path / "marker"
    fold = tmp_path / "Trainer__Plans" / "fold_0"
    fold.mkdir(parents=True)
    path = fold / "model_final_checkpoint.model"
    torch.save({"state_dict": OrderedDict(w=torch.zeros(2)), "epoch": 3, "plot_stuff": _WritesMarker(marker)}, path)
    with pytest.raises(MedSegError, match=r"Refusing to load .*system"):
        load_checkpoint(path)
    assert not marker.exists()


def test_v1_checkpoints_in_pytorchs_old_format_load_and_hostile_ones_are_refused(tmp_path):
    """Models trained before PyTorch 1.6 are stored in its legacy (non-zip) format."""
    import torch
    folder = tmp_path / "Trainer__Plans"
    (folder / "fold_0").mkdir(parents=True)
    path = folder / "fold_0" / "plain.pth"
    data = {"network_weights": OrderedDict(w=torch.arange(3.0)), "plot_stuff": ([np.float64(0.5)], [np.float32(1)])}
    torch.save(data, path, _use_new_zipfile_serialization=False)
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["network_weights"]["w"], torch.arange(3.0)) and loaded["plot_stuff"][0][0] == 0.5
    marker = tmp_path / "marker"
    torch.save({**data, "evil": _WritesMarker(marker)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(MedSegError, match=r"Refusing to load .*system"):
        load_checkpoint(path)
    assert not marker.exists()
