"""`medseg dataset verify`: every problem is found and reported together, with the real CLI."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "planning"))
from planning_helpers import affine_for, make_dataset, write_volume  # noqa: E402

from chimerax.medseg.cli import main
from chimerax.medseg.datasets.verify import verify_dataset


def _clean(tmp_path):
    shapes = [(10, 12, 11)] * 6
    return make_dataset(tmp_path / "raw", 5, "Check", shapes, [(2.0, 1.0, 1.0)] * 6, ["T1", "T2"], seed=4)


def test_clean_dataset_passes(tmp_path, monkeypatch, capsys):
    folder = _clean(tmp_path)
    report = verify_dataset(folder)
    assert report.ok and report.num_cases == 6 and not report.warnings
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    assert main(["dataset", "verify", "5"]) == 0
    assert "ready for planning" in capsys.readouterr().out


def test_every_problem_is_reported_at_once(tmp_path, monkeypatch, capsys):
    folder = _clean(tmp_path)
    imgs, labs = folder / "imagesTr", folder / "labelsTr"
    (imgs / "case000_0001.nii.gz").unlink()                                   # missing channel
    (imgs / "case001_0000.nii.gz").rename(imgs / "case001_t1.nii.gz")         # wrong channel suffix
    write_volume(labs / "orphan.nii.gz", np.zeros((10, 12, 11)), (2, 1, 1), np.uint8)  # label without images
    write_volume(labs / "case002.nii.gz", np.zeros((10, 12, 12)), (2, 1, 1), np.uint8)  # shape mismatch
    write_volume(labs / "case003.nii.gz", np.zeros((10, 12, 11)), (2.5, 1, 1), np.uint8)  # spacing mismatch
    seg = np.zeros((10, 12, 11), np.uint8)
    seg[4, 4, 4] = 7                                                          # undeclared label value
    write_volume(labs / "case004.nii.gz", seg, (2, 1, 1), np.uint8)
    image = np.ones((10, 12, 11), np.float32)
    image[1, 1, 1] = np.nan                                                   # NaN in an image
    write_volume(imgs / "case005_0000.nii.gz", image, (2, 1, 1))
    write_volume(labs / "case005.nii.gz", np.zeros((10, 12, 11)), (2, 1, 1), np.uint8)  # empty label (warning)
    (folder / "imagesTr" / "notes.txt").write_text("x")                       # stray file
    meta = json.loads((folder / "dataset.json").read_text())
    meta["numTraining"] = 7                                                   # count mismatch
    (folder / "dataset.json").write_text(json.dumps(meta))
    report = verify_dataset(folder, num_processes=2)
    text = report.format()
    expected = ["case000 is missing channel file(s): case000_0001.nii.gz", "case001_t1.nii.gz lacks the 4-digit",
                "labelsTr/orphan.nii.gz has no images", "numTraining = 7 but 6", "case002_0000.nii.gz and label",
                "shape (11, 12, 10) vs (12, 12, 10)", "spacing (1.0, 1.0, 2.0) vs (1.0, 1.0, 2.5)",
                "contains value(s) [7]", "NaN/infinite", "notes.txt does not end in", "case005.nii.gz is empty"]
    for phrase in expected:
        assert phrase in text, phrase
    assert not report.ok and len(report.errors) >= 10
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    assert main(["dataset", "verify", "Dataset005_Check"]) == 1
    assert "problem(s) to fix" in capsys.readouterr().out


def test_affine_origin_mismatch_is_found(tmp_path):
    folder = _clean(tmp_path)
    seg = nib.load(str(folder / "labelsTr" / "case000.nii.gz"))
    moved = nib.Nifti1Image(np.asanyarray(seg.dataobj), affine_for((2, 1, 1), origin=(5.0, 0, 0)))
    nib.save(moved, str(folder / "labelsTr" / "case000.nii.gz"))
    report = verify_dataset(folder)
    assert any("origin or orientation" in e and "case000" in e for e in report.errors)


def test_broken_dataset_json_is_explained(tmp_path):
    folder = _clean(tmp_path)
    meta = json.loads((folder / "dataset.json").read_text())
    meta["labels"] = {"background": 0, "tumor": 2}
    del meta["file_ending"]
    (folder / "dataset.json").write_text(json.dumps(meta))
    report = verify_dataset(folder)
    assert any("consecutive" in e for e in report.errors)
    assert any("file_ending" in e for e in report.errors)


def test_region_labels_declare_their_values(tmp_path):
    folder = make_dataset(tmp_path / "raw", 6, "Regions", [(8, 9, 10)] * 2, [(1, 1, 1)] * 2, ["MR"], regions=True)
    assert verify_dataset(folder).ok
    meta = json.loads((folder / "dataset.json").read_text())
    del meta["regions_class_order"]
    (folder / "dataset.json").write_text(json.dumps(meta))
    assert any("regions_class_order" in e for e in verify_dataset(folder).errors)
