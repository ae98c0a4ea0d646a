"""``medseg dicom STUDY -o OUT`` converts the RT-STRUCT and SEG objects beside their series."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom

sys.path.insert(0, str(Path(__file__).parent))
from dicom_helpers import make_volume, write_series  # noqa: E402

from chimerax.medseg.cli import main  # noqa: E402
from chimerax.medseg.images.dicom import read_dicom_volume, write_dicom_seg  # noqa: E402
from chimerax.medseg.images.rtstruct_write import write_rtstruct  # noqa: E402


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def make_study(root: Path) -> np.ndarray:
    """A CT series (number 3), two annotators' RT-STRUCTs and a SEG on it, and an unrelated MR series."""
    write_series(root / "ct", make_volume((4, 24, 20)), series_number=3, description="Body")
    write_series(root / "mr", make_volume((3, 10, 10), seed=2), series_number=5, description="T2", modality="MR")
    image, source = read_dicom_volume(root / "ct")
    labels = np.zeros(image.shape, np.uint8)
    labels[1:3, 4:14, 3:12] = 1     # gtv
    labels[0:4, 12:20, 8:18] = 2    # lung, overlapping nothing (gtv rows end at 13: they touch)
    write_rtstruct(labels, source, {1: "GTV-1", 2: "Lung-Left"}, root / "rt" / "reader1.dcm", label="reader1")
    second = labels.copy()
    second[2, 4:14, 3:12] = 0
    write_rtstruct(second, source, {1: "GTV-1", 2: "Lung-Left"}, root / "rt" / "reader2.dcm", label="reader2")
    write_dicom_seg(labels, source, {1: "GTV-1", 2: "Lung-Left"}, root / "seg" / "seg.dcm")
    return labels


def test_study_conversion_writes_label_files_and_sidecars(tmp_path, capsys):
    labels = make_study(tmp_path / "study")
    code, out, err = run_cli(capsys, "dicom", tmp_path / "study")
    assert code == 0 and "RTSTRUCT" in out and "'reader2' on series 3 (Body): GTV-1, Lung-Left" in out
    code, out, err = run_cli(capsys, "dicom", tmp_path / "study", "-s", "3", "-o", tmp_path / "out",
                             "--roi", "lung*", "GTV*")
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["3_Body.nii.gz", "3_Body_reader1_rtstruct.json", "3_Body_reader1_rtstruct.nii.gz",
                     "3_Body_reader2_rtstruct.json", "3_Body_reader2_rtstruct.nii.gz", "3_Body_seg.json",
                     "3_Body_seg.nii.gz"]
    image = nib.load(str(tmp_path / "out" / "3_Body.nii.gz"))
    for stem in ("3_Body_reader1_rtstruct", "3_Body_seg"):
        nii = nib.load(str(tmp_path / "out" / f"{stem}.nii.gz"))
        np.testing.assert_allclose(nii.affine, image.affine)
        sidecar = json.loads((tmp_path / "out" / f"{stem}.json").read_text())
        assert sidecar["labels"] == {"1": "Lung-Left", "2": "GTV-1"}  # --roi order
        back = np.asarray(nii.dataobj).transpose(2, 1, 0)
        np.testing.assert_array_equal(back == 1, labels == 2)
        np.testing.assert_array_equal(back == 2, labels == 1)
    assert "note: " not in err or "T2" not in err  # the MR series has no labels


def test_file_output_names_labels_after_it(tmp_path, capsys):
    write_series(tmp_path / "s", make_volume((3, 12, 12)), series_number=2)
    image, source = read_dicom_volume(tmp_path / "s")
    labels = np.zeros(image.shape, np.uint8)
    labels[:, 3:8, 3:8] = 1
    write_rtstruct(labels, source, {1: "liver"}, tmp_path / "s" / "rt.dcm")
    code, out, err = run_cli(capsys, "dicom", tmp_path / "s", "-o", tmp_path / "o" / "ct.nii.gz")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["ct.nii.gz", "ct_rtstruct.json",
                                                                   "ct_rtstruct.nii.gz"]


def test_missing_referenced_series_is_named_and_nothing_is_written(tmp_path, capsys):
    make_study(tmp_path / "study")
    ds = pydicom.dcmread(tmp_path / "study" / "rt" / "reader2.dcm")
    series = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    series.SeriesInstanceUID = "1.2.826.0.1.99"
    series.ContourImageSequence = []
    for roi in ds.ROIContourSequence:
        for contour in roi.ContourSequence:
            contour.ContourImageSequence[0].ReferencedSOPInstanceUID = "1.2.826.0.1.98"
    ds.save_as(tmp_path / "study" / "rt" / "reader2.dcm")
    code, out, err = run_cli(capsys, "dicom", tmp_path / "study", "--all", "-o", tmp_path / "out")
    assert code == 1
    assert "RTSTRUCT reader2.dcm references image series 1.2.826.0.1.99, which is not in" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_seg_on_a_missing_series_is_named(tmp_path, capsys):
    make_study(tmp_path / "study")
    ds = pydicom.dcmread(tmp_path / "study" / "seg" / "seg.dcm")
    ds.ReferencedSeriesSequence[0].SeriesInstanceUID = "1.2.826.0.1.77"
    for item in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence:
        item.ReferencedSOPInstanceUID = "1.2.826.0.1.76"
    ds.save_as(tmp_path / "study" / "seg" / "seg.dcm")
    code, out, err = run_cli(capsys, "dicom", tmp_path / "study", "-s", "3", "-o", tmp_path / "out")
    assert code == 1 and "SEG seg.dcm references image series 1.2.826.0.1.77, which is not in" in err
    assert not (tmp_path / "out").exists()
    code, out, err = run_cli(capsys, "dicom", tmp_path / "study")  # the listing says so too
    assert code == 0 and "on series 1.2.826.0.1.77 (NOT in the folder)" in out


def test_bad_contour_leaves_no_partial_output(tmp_path, capsys):
    make_study(tmp_path / "study")
    ds = pydicom.dcmread(tmp_path / "study" / "rt" / "reader1.dcm")
    contour = ds.ROIContourSequence[0].ContourSequence[0]
    points = np.asarray(contour.ContourData, float).reshape(-1, 3) + [0, 0, 100.0]
    contour.ContourData = [f"{v:.4f}" for v in points.ravel()]
    ds.save_as(tmp_path / "study" / "rt" / "reader1.dcm")
    code, out, err = run_cli(capsys, "dicom", tmp_path / "study", "-s", "3", "-o", tmp_path / "out")
    assert code == 1 and "ROI 'GTV-1' has a contour off the image grid" in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_unknown_roi_pattern_lists_the_rois(tmp_path, capsys):
    make_study(tmp_path / "study")
    code, out, err = run_cli(capsys, "dicom", tmp_path / "study", "-s", "3", "-o", tmp_path / "out", "--roi", "PTV*")
    assert code == 1 and "No ROI matches 'PTV*' in reader1.dcm; its ROIs are: GTV-1, Lung-Left" in err
    assert not (tmp_path / "out").exists()
