"""Finding datasets by id or name under the data root; nnU-Net's variables honoured."""
from __future__ import annotations

import pytest

from chimerax.medseg.datasets.paths import data_folder, find_dataset
from chimerax.medseg.errors import MedSegError


def _make(root, name):
    (root / name).mkdir(parents=True)
    (root / name / "dataset.json").write_text("{}")
    return root / name


def test_find_by_id_name_and_path(tmp_path, monkeypatch):
    monkeypatch.delenv("nnUNet_raw", raising=False)
    monkeypatch.setenv("MEDSEG_DATA", str(tmp_path))
    brain = _make(tmp_path / "raw", "Dataset102_Brain")
    _make(tmp_path / "raw", "Dataset007_Liver")
    assert find_dataset("102") == brain and find_dataset(102) == brain
    assert find_dataset("Brain") == brain and find_dataset("Dataset102_Brain") == brain
    assert find_dataset(str(brain)) == brain
    with pytest.raises(MedSegError, match="No dataset '5'.*Dataset007_Liver"):
        find_dataset("5")


def test_nnunet_variables_take_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEG_DATA", str(tmp_path / "mine"))
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "nn_raw"))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "nn_pre"))
    monkeypatch.delenv("nnUNet_results", raising=False)
    assert data_folder("raw") == tmp_path / "nn_raw"
    assert data_folder("preprocessed") == tmp_path / "nn_pre"
    assert data_folder("results") == tmp_path / "mine" / "results"
    found = _make(tmp_path / "nn_raw", "Dataset001_A")
    assert find_dataset(1) == found


def test_ambiguous_id_and_missing_root(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    with pytest.raises(MedSegError, match="does not exist"):
        find_dataset(1)
    _make(tmp_path / "raw", "Dataset001_A")
    _make(tmp_path / "raw", "Dataset001_B")
    with pytest.raises(MedSegError, match="ambiguous"):
        find_dataset(1)
