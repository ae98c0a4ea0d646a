"""Preprocessing to disk: parallel = serial, resumable after interruption, invertible properties; `medseg plan`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from planning_helpers import make_dataset  # noqa: E402

from chimerax.medseg.cli import main
from chimerax.medseg.datasets.dataset_json import load_dataset
from chimerax.medseg.planning.fingerprint import extract_fingerprint
from chimerax.medseg.planning.planner import plan_experiment
from chimerax.medseg.preprocessing.cropping import uncrop
from chimerax.medseg.preprocessing.to_disk import preprocess_dataset


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    root = tmp_path_factory.mktemp("todisk")
    folder = make_dataset(root / "raw", 31, "Small", [(14, 16, 15), (15, 16, 14), (14, 15, 16), (16, 14, 15)],
                          [(2.0, 1.0, 1.0), (2.2, 1.0, 1.0), (2.0, 0.9, 0.9), (1.8, 1.0, 1.0)], ["T1", "T2"],
                          border=2, seed=5)
    dataset = load_dataset(folder)
    fingerprint = extract_fingerprint(dataset, 1, foreground_samples=1e4)
    plans, _ = plan_experiment(dataset.meta, fingerprint, folder.name)
    return root, dataset, plans


def _outputs(folder: Path) -> dict:
    return {p.name: np.load(p) for p in sorted(folder.glob("*.npy"))}


def test_parallel_equals_serial_and_properties_invert(planned):
    root, dataset, plans = planned
    serial = preprocess_dataset(dataset, plans, "3d_fullres", root / "serial", num_processes=1)
    parallel = preprocess_dataset(dataset, plans, "3d_fullres", root / "parallel", num_processes=2)
    assert serial["done"] == parallel["done"] == 4
    a, b = _outputs(Path(serial["folder"])), _outputs(Path(parallel["folder"]))
    assert a.keys() == b.keys() and len(a) == 8
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    props = json.loads((Path(serial["folder"]) / "case000.json").read_text())
    seg = a["case000_seg.npy"]
    assert seg.dtype == np.int8 and set(np.unique(seg)) <= {-1, 0, 1, 2}
    # the properties put the (unresampled) crop back where it came from
    box = props["bbox_used_for_cropping"]
    assert props["shape_after_cropping_and_before_resampling"] == [b - a for a, b in box]
    full = uncrop(np.ones(props["shape_after_cropping_and_before_resampling"]), box, props["shape_before_cropping"])
    assert full.shape == tuple(props["shape_before_cropping"]) and full.sum() == np.prod([b - a for a, b in box])
    locations = np.load(Path(serial["folder"]) / "case000_locations.npz", allow_pickle=False)
    assert set(locations.files) == {"1", "2"}
    coords = locations["1"]
    assert coords.shape[1] == 4 and (seg[tuple(coords.T)] == 1).all()


def test_resume_after_interruption(planned):
    root, dataset, plans = planned
    first = preprocess_dataset(dataset, plans, "2d", root / "resume", num_processes=1)
    folder = Path(first["folder"])
    (folder / "case002.json").unlink()             # killed before the case was finished
    stale = folder / ".case003.npy.abc.part.npy"    # a temporary file of a killed writer
    stale.write_bytes(b"partial")
    before = (folder / "case000.npy").stat().st_mtime_ns
    second = preprocess_dataset(dataset, plans, "2d", root / "resume", num_processes=1)
    assert (second["done"], second["skipped"]) == (1, 3)
    assert (folder / "case002.json").is_file() and not stale.exists()
    assert (folder / "case000.npy").stat().st_mtime_ns == before
    changed = json.loads(json.dumps(plans))
    changed["configurations"]["2d"]["spacing"] = [0.5, 0.5]  # new plans: everything is redone
    assert preprocess_dataset(dataset, changed, "2d", root / "resume", num_processes=1)["done"] == 4


def test_plan_command_end_to_end(planned, monkeypatch, capsys):
    root, dataset, _ = planned
    monkeypatch.setenv("nnUNet_raw", str(root / "raw"))
    monkeypatch.setenv("nnUNet_preprocessed", str(root / "pre"))
    assert main(["plan", "31", "--quiet", "-c", "3d_fullres", "--preset", "resenc_m", "--intensity-samples", "1e4"]) == 0
    out = capsys.readouterr().out
    assert "Batch size" in out and "Target spacing" in out and "3d_fullres: patch" in out
    folder = root / "pre" / "Dataset031_Small"
    plans = json.loads((folder / "nnUNetResEncUNetMPlans.json").read_text())
    assert plans["experiment_planner_used"] == "nnUNetPlannerResEncM"
    assert (folder / "dataset_fingerprint.json").is_file() and (folder / "nnUNetResEncUNetMPlans_summary.txt").is_file()
    assert len(list((folder / "nnUNetPlans_3d_fullres").glob("*.json"))) == 4


def test_plan_refuses_a_broken_dataset(planned, monkeypatch, capsys, tmp_path):
    root, _, _ = planned
    folder = make_dataset(tmp_path / "raw", 32, "Broken", [(8, 8, 8)] * 2, [(1, 1, 1)] * 2, ["MR"])
    (folder / "labelsTr" / "case001.nii.gz").unlink()
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    assert main(["plan", "32", "--quiet"]) == 1
    assert "medseg dataset verify" in capsys.readouterr().err
    assert not (tmp_path / "pre").exists()
