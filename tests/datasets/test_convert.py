"""Converters: BraTS (regions, label 4 -> 3), multi-mask merge/select with the overlap rule, DICOM + masks."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "planning"))
from planning_helpers import write_volume  # noqa: E402

from chimerax.medseg.cli import main
from chimerax.medseg.datasets.verify import verify_dataset
from chimerax.medseg.errors import MedSegError

SHAPE, SPACING = (6, 7, 8), (1.0, 1.0, 1.0)


def _brats(tmp_path, label_values):
    src = tmp_path / "brats"
    rng = np.random.RandomState(0)
    for i, suffixes in enumerate([("_t1", "_t1ce", "_t2", "_flair", "_seg"), ("-t1n", "-t1c", "-t2w", "-t2f", "-seg")]):
        patient = src / f"P{i}"
        for s in suffixes[:4]:
            write_volume(patient / f"P{i}{s}.nii.gz", rng.rand(*SHAPE).astype(np.float32) + 1, SPACING)
        seg = np.zeros(SHAPE, np.uint8)
        for k, value in enumerate(label_values):
            seg[k + 1] = value
        write_volume(patient / f"P{i}{suffixes[4]}.nii.gz", seg, SPACING, np.uint8)
    return src


def test_brats_conversion_makes_a_valid_region_dataset(tmp_path):
    src = _brats(tmp_path, [1, 2, 4])
    raw = tmp_path / "raw"
    assert main(["dataset", "convert", "brats", str(src), "--id", "137", "--raw", str(raw)]) == 0
    folder = raw / "Dataset137_BraTS"
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["labels"]["whole_tumor"] == [1, 2, 3] and meta["regions_class_order"] == [1, 2, 3]
    assert meta["channel_names"] == {"0": "T1", "1": "T1ce", "2": "T2", "3": "Flair"}
    seg = np.asanyarray(nib.load(str(folder / "labelsTr" / "P0.nii.gz")).dataobj).transpose(2, 1, 0)
    assert seg[1].max() == 2 and seg[2].max() == 1 and seg[3].max() == 3  # necrosis 1->2, edema 2->1, ET 4->3
    t1ce = nib.load(str(folder / "imagesTr" / "P1_0001.nii.gz"))
    original = nib.load(str(src / "P1" / "P1-t1c.nii.gz"))
    np.testing.assert_array_equal(np.asanyarray(t1ce.dataobj), np.asanyarray(original.dataobj))
    assert verify_dataset(folder).ok


def test_brats_refuses_unknown_labels_and_writes_nothing(tmp_path):
    src = _brats(tmp_path, [1, 5])
    with pytest.raises(MedSegError, match=r"unexpected label value\(s\) \[5\]"):
        from chimerax.medseg.datasets.convert_brats import convert_brats
        convert_brats(src, tmp_path / "raw", 138)
    assert not list((tmp_path / "raw").glob("Dataset138_*"))


def _multimask(tmp_path):
    src = tmp_path / "nsclc"
    for case in ("LUNG1-001", "LUNG1-002"):
        write_volume(src / case / "image.nii.gz", np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE), SPACING)
        left, right, gtv = (np.zeros(SHAPE, np.uint8) for _ in range(3))
        left[:, :, :4] = 1
        right[:, :, 4:] = 1
        gtv[2:4, 2:4, 2:4] = 1  # inside the left lung: overlaps
        write_volume(src / case / "Lung-Left.nii.gz", left, SPACING, np.uint8)
        write_volume(src / case / "Lung-Right.nii.gz", right, SPACING, np.uint8)
        write_volume(src / case / "GTV-1.nii.gz", gtv, SPACING, np.uint8)
        write_volume(src / case / "Esophagus.nii.gz", gtv, SPACING, np.uint8)  # not selected: ignored
    return src


def test_multimask_merge_select_and_later_label_wins(tmp_path, capsys):
    src = _multimask(tmp_path)
    raw = tmp_path / "raw"
    code = main(["dataset", "convert", "multimask", str(src), "--id", "200", "--name", "Lung", "--raw", str(raw),
                 "--channel", "CT=image.nii.gz", "--label", "lung=Lung-Left*,Lung-Right*", "--label", "gtv=GTV*"])
    assert code == 0
    assert "overlaps an earlier label were given to gtv" in capsys.readouterr().out
    folder = raw / "Dataset200_Lung"
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "lung": 1, "gtv": 2}
    seg = np.asanyarray(nib.load(str(folder / "labelsTr" / "LUNG1-001.nii.gz")).dataobj).transpose(2, 1, 0)
    assert (seg == 2).sum() == 8 and (seg == 1).sum() == np.prod(SHAPE) - 8 and seg[2, 2, 2] == 2
    assert verify_dataset(folder).ok


def test_multimask_overlap_error_and_missing_mask(tmp_path):
    from chimerax.medseg.datasets.convert_cases import convert_cases
    src = _multimask(tmp_path)
    with pytest.raises(MedSegError, match="gtv overlaps label"):
        convert_cases(src, tmp_path / "raw", 201, "Lung", ["CT=image.nii.gz"], ["lung=Lung-*", "gtv=GTV*"], "error")
    (src / "LUNG1-002" / "GTV-1.nii.gz").unlink()
    with pytest.raises(MedSegError, match="no mask file for label 'gtv'"):
        convert_cases(src, tmp_path / "raw", 202, "Lung", ["CT=image.nii.gz"], ["gtv=GTV*"])
    assert not list((tmp_path / "raw").glob("Dataset20[12]_*"))
    folder, notes = convert_cases(src, tmp_path / "raw", 203, "Lung", ["CT=image.nii.gz"], ["gtv=GTV*"],
                                  allow_missing=True)
    assert any("no gtv mask" in n for n in notes)
    report = verify_dataset(folder)
    assert report.ok and any("LUNG1-002" in w and "empty" in w for w in report.warnings)


def test_mask_off_the_image_grid_is_refused(tmp_path):
    from chimerax.medseg.datasets.convert_cases import convert_cases
    src = _multimask(tmp_path)
    write_volume(src / "LUNG1-001" / "GTV-1.nii.gz", np.ones((6, 7, 9), np.uint8), SPACING, np.uint8)
    with pytest.raises(MedSegError, match="not on the image grid"):
        convert_cases(src, tmp_path / "raw", 204, "Lung", ["CT=image.nii.gz"], ["gtv=GTV*"])


def test_dicom_series_plus_masks(tmp_path):
    import pydicom.data
    from chimerax.medseg.images import read_image, write_label_image
    from chimerax.medseg.images.dicom import read_dicom_series
    src = tmp_path / "dicom_cases"
    series = src / "case1" / "CT"
    series.mkdir(parents=True)
    shutil.copy(pydicom.data.get_testdata_file("CT_small.dcm"), series / "1.dcm")
    image = read_dicom_series(series)
    mask = np.zeros(image.shape, np.uint8)
    mask[:, 10:20, 10:30] = 1
    write_label_image(mask, image, src / "case1" / "GTV.nii.gz")
    raw = tmp_path / "raw"
    assert main(["dataset", "convert", "dicom", str(src), "--id", "300", "--name", "Dicom", "--raw", str(raw),
                 "--channel", "CT=CT", "--label", "gtv=GTV*"]) == 0
    folder = raw / "Dataset300_Dicom"
    converted = read_image(folder / "imagesTr" / "case1_0000.nii.gz")
    np.testing.assert_array_equal(converted.array, image.array)
    np.testing.assert_allclose(converted.affine, image.affine, atol=1e-4)
    assert read_image(folder / "labelsTr" / "case1.nii.gz").array.sum() == 200
    assert verify_dataset(folder).ok
