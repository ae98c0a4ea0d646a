"""The brats models write BraTS's own label values (2 edema, 1 necrosis, 4 enhancing tumour) by default.

A v1-layout BraTS-region model made by the real nnunet 1.7.1 (tests/data/nnunet_v1/Task901_V1BraTS.zip)
is published on a real HTTP server on 127.0.0.1 under a manifest entry with BraTS's mapping, fetched
and run through ``medseg predict``; nnunet 1.7.1's own labels for the same cases, mapped with the
entry's mapping, are the reference.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chimerax.medseg.images import read_case, read_image
from chimerax.medseg.inference.label_values import apply_output_values
from chimerax.medseg.inference.predictor import Predictor
from chimerax.medseg.models.install import fetch_model, install_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from registry_helpers import cache, server, sha256_bytes, write_manifest  # noqa: E402,F401 (fixtures)

DATA = Path(__file__).resolve().parents[1] / "data" / "nnunet_v1"
TASK = "Task901_V1BraTS"
V1_RUN = DATA / TASK / "v1_outputs" / "folds_0_mirror"   # nnUNet_predict's labels, its own values 1, 2, 3
MAPPING = {"1": 2, "2": 1, "3": 4}                       # as src/models_manifest.json states it for brats


def _entry(name: str, url: str, data: bytes) -> dict:
    return {"name": name, "task": "BraTS-like test model", "modality": "MRI",
            "channel_names": ["T1", "T1ce", "T2", "FLAIR"],
            "labels": {"background": 0, "whole tumour": [1, 2, 3], "tumour core": [2, 3], "enhancing tumour": [3]},
            "regions_class_order": [1, 2, 3], "configuration": "3d_fullres", "folds": [0],
            "licence": "CC0-1.0", "citation": "none", "source": "download", "output_label_values": MAPPING,
            "files": [{"url": url, "sha256": sha256_bytes(data), "size": len(data)}]}


@pytest.fixture
def published(cache, server, tmp_path, monkeypatch):
    """The fixture zip served on 127.0.0.1 under manifest entry "brats_test"."""
    data = (DATA / f"{TASK}.zip").read_bytes()
    server.add("brats.zip", data)
    manifest = write_manifest(tmp_path / "manifest.json", [_entry("brats_test", server.url("brats.zip"), data)])
    monkeypatch.setenv("MEDSEG_MANIFEST", str(manifest))
    return manifest


def _medseg(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chimerax.medseg.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def _agreement(ours: np.ndarray, reference: np.ndarray) -> float:
    assert ours.shape == reference.shape
    return float((ours == reference).mean())


def test_fetched_brats_model_writes_brats_values_and_training_values_on_request(published, cache, tmp_path):
    fetch_model("brats_test")
    record = json.loads((cache / "models" / "brats_test" / "medseg_install.json").read_text())
    assert record["output_label_values"] == MAPPING  # the install remembers its manifest entry's mapping
    env = {"MEDSEG_CACHE_DIR": str(cache), "MEDSEG_MANIFEST": str(published), "MEDSEG_OFFLINE": "1",
           "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    cases = DATA / TASK / "cases"
    out = _medseg(["predict", "-m", "brats_test", "-i", str(cases), "-o", str(tmp_path / "brats"), "--quiet"], env)
    assert out.returncode == 0, out.stderr
    out = _medseg(["predict", "-m", "brats_test", "-i", str(cases), "-o", str(tmp_path / "training"),
                   "--training-label-values", "--quiet"], env)
    assert out.returncode == 0, out.stderr
    mapping = {int(k): v for k, v in MAPPING.items()}
    for case in ("aniso", "cropped", "small"):
        v1 = read_image(V1_RUN / f"{case}.nii.gz").array[0].astype(np.uint8)
        brats = read_image(tmp_path / "brats" / f"{case}.nii.gz").array[0]
        training = read_image(tmp_path / "training" / f"{case}.nii.gz").array[0]
        assert _agreement(brats, apply_output_values(v1, mapping)) > 0.999
        assert _agreement(training, v1) > 0.999
        assert set(np.unique(brats).tolist()) <= {0, 1, 2, 4}
    # the cases hold every region, so the values really changed (3 -> 4 at least)
    assert 4 in np.unique(read_image(tmp_path / "brats" / "cropped.nii.gz").array[0])


def test_region_names_follow_the_written_values(published):
    predictor = Predictor.from_folder(fetch_model("brats_test"), folds=["0"], mirroring=False)
    names, members = predictor.label_names, predictor.label_members
    assert sorted(names.values()) == sorted(["whole tumour", "tumour core", "enhancing tumour"])
    by_name = {name: set(members[value]) for value, name in names.items()}
    assert by_name["whole tumour"] == {1, 2, 4} and by_name["tumour core"] == {1, 4}
    assert by_name["enhancing tumour"] == {4}
    image = read_case(sorted((DATA / TASK / "cases").glob("cropped_[0-9][0-9][0-9][0-9].nii.gz")))
    labels = predictor.predict(image).labels
    assert set(np.unique(labels).tolist()) - {0} <= set(names)  # every written value is a named one


def test_local_install_under_the_manifest_name_keeps_the_mapping_another_name_does_not(published, cache):
    said: list[str] = []
    install_model("brats_test", DATA / f"{TASK}.zip", notify=said.append)
    install_model("my_brats", DATA / f"{TASK}.zip")
    assert any("1 -> 2" in message for message in said)
    records = {n: json.loads((cache / "models" / n / "medseg_install.json").read_text())
               for n in ("brats_test", "my_brats")}
    assert records["brats_test"]["output_label_values"] == MAPPING
    assert "output_label_values" not in records["my_brats"]
    assert Predictor.from_folder(cache / "models" / "my_brats").output_values is None


def test_a_mapping_that_misses_a_value_the_model_writes_is_refused_before_any_work(published, cache, tmp_path):
    from chimerax.medseg.errors import MedSegError
    from chimerax.medseg.models.install_record import OUTPUT_VALUES_KEY
    folder = fetch_model("brats_test")
    record = cache / "models" / "brats_test" / "medseg_install.json"
    data = json.loads(record.read_text())
    data[OUTPUT_VALUES_KEY] = {"1": 2, "2": 1}  # value 3 (enhancing tumour) left out
    record.write_text(json.dumps(data))
    with pytest.raises(MedSegError, match=r"writes label value\(s\) 3"):
        Predictor.from_folder(folder, folds=["0"])
    assert Predictor.from_folder(folder, folds=["0"], training_label_values=True).output_values is None
