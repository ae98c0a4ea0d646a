"""``medseg dataset convert dicom``: DICOM studies with RT-STRUCT / SEG ROIs -> raw dataset, with one
label map per annotator in the form ``medseg evaluate``'s stability test reads."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "images"))
from dicom_helpers import make_volume, write_series  # noqa: E402

from chimerax.medseg.cli import main  # noqa: E402
from chimerax.medseg.images.dicom import read_dicom_volume, write_dicom_seg  # noqa: E402
from chimerax.medseg.images.rtstruct_write import write_rtstruct  # noqa: E402


def make_case(folder: Path, seed: int) -> dict[str, np.ndarray]:
    """One study in one folder: a CT series, two readers' RT-STRUCTs (GTV + lung), a SEG of reader 1."""
    write_series(folder, make_volume((4, 20, 18), seed=seed), series_number=2, description="CT chest")
    image, source = read_dicom_volume(folder)
    shift = seed % 3
    truth = {}
    for reader, grow in (("reader1", 0), ("reader2", 1)):
        labels = np.zeros(image.shape, np.uint8)
        labels[0:4, 10:18, 2:16] = 2                          # lung
        labels[1:3, 4 + shift:10 + grow, 4:10 + grow] = 1     # GTV, reader 2 draws it a bit bigger
        write_rtstruct(labels, source, {1: "GTV-1", 2: "Lung-Left"}, folder / f"rt_{reader}.dcm", label=reader)
        truth[reader] = labels
    return truth


def read_labels(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj).transpose(2, 1, 0)


def test_studies_with_two_annotators(tmp_path, capsys):
    truths = {f"case{i}": make_case(tmp_path / "src" / f"case{i}", seed=i) for i in (1, 2)}
    raw = tmp_path / "raw"
    code = main(["dataset", "convert", "dicom", str(tmp_path / "src"), "--id", "310", "--name", "Lung",
                 "--raw", str(raw), "--channel", "CT=CT*", "--label", "gtv=GTV*", "--label", "lung=Lung*",
                 "--annotator", "r1=reader1", "--annotator", "r2=reader2"])
    out = capsys.readouterr()
    assert code == 0, out.err
    folder = raw / "Dataset310_Lung"
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "gtv": 1, "lung": 2} and meta["channel_names"] == {"0": "CT"}
    assert meta["annotators"] == {"r1": "annotators/r1", "r2": "annotators/r2"}
    for case, truth in truths.items():
        # our label values: gtv 1, lung 2, the same as the RT-STRUCTs here; the GTV drawn over the lung wins
        np.testing.assert_array_equal(read_labels(folder / "labelsTr" / f"{case}.nii.gz"), truth["reader1"])
        for name, reader in (("r1", "reader1"), ("r2", "reader2")):
            np.testing.assert_array_equal(read_labels(folder / "annotators" / name / f"{case}.nii.gz"), truth[reader])
        image = nib.load(str(folder / "imagesTr" / f"{case}_0000.nii.gz"))
        np.testing.assert_allclose(nib.load(str(folder / "labelsTr" / f"{case}.nii.gz")).affine, image.affine)
    assert main(["dataset", "verify", str(folder), "-np", "1"]) == 0
    # the annotator folders are what the stability test reads: labelsTr scored against both readers
    code = main(["evaluate", str(folder / "labelsTr"), str(folder / "annotators" / "r1"),
                 str(folder / "annotators" / "r2"), "-o", str(tmp_path / "eval")])
    assert code == 0
    assert (tmp_path / "eval" / "inter_reference.csv").is_file()


def test_annotator_placeholder_in_roi_names_and_seg(tmp_path, capsys):
    """Readers' ROIs in one SEG (GTV_a, GTV_b): '{annotator}' in the pattern picks each one's."""
    folder = tmp_path / "src" / "p1"
    write_series(folder, make_volume((3, 12, 12)), series_number=4, description="CT")
    image, source = read_dicom_volume(folder)
    labels = np.zeros(image.shape, np.uint8)
    labels[:, 2:6, 2:6] = 1
    labels[:, 7:10, 7:10] = 2
    write_dicom_seg(labels, source, {1: "GTV_a", 2: "GTV_b"}, folder / "seg.dcm")
    code = main(["dataset", "convert", "dicom", str(tmp_path / "src"), "--id", "311", "--name", "Seg",
                 "--raw", str(tmp_path / "raw"), "--channel", "CT=4", "--label", "gtv=GTV_{annotator}",
                 "--annotator", "a", "--annotator", "b"])
    assert code == 0, capsys.readouterr().err
    root = tmp_path / "raw" / "Dataset311_Seg" / "annotators"
    np.testing.assert_array_equal(read_labels(root / "a" / "p1.nii.gz"), (labels == 1).astype(np.uint8))
    np.testing.assert_array_equal(read_labels(root / "b" / "p1.nii.gz"), (labels == 2).astype(np.uint8))


def test_missing_roi_or_series_refused_and_nothing_kept(tmp_path, capsys):
    make_case(tmp_path / "src" / "case1", seed=1)
    argv = ["dataset", "convert", "dicom", str(tmp_path / "src"), "--id", "312", "--name", "Bad",
            "--raw", str(tmp_path / "raw"), "--channel", "CT=CT*"]
    assert main(argv + ["--label", "ptv=PTV*"]) == 1
    assert "Case case1: no mask file or ROI for label 'ptv'" in capsys.readouterr().err
    assert main(argv + ["--label", "gtv=GTV*", "--annotator", "r3=reader3"]) == 1
    assert "no RT-STRUCT/SEG matches annotator r3's pattern 'reader3'" in capsys.readouterr().err
    assert main(argv[:-1] + ["CT=MR*", "--label", "gtv=GTV*"]) == 1
    assert "channel 'CT' (patterns MR*) matched 0 series" in capsys.readouterr().err
    assert not (tmp_path / "raw").exists() or not list((tmp_path / "raw").iterdir())


def test_overlapping_rois_of_two_labels_later_wins_or_refused(tmp_path, capsys):
    folder = tmp_path / "src" / "case1"
    write_series(folder, make_volume((3, 12, 12)), series_number=2, description="CT")
    image, source = read_dicom_volume(folder)
    lung, gtv = np.zeros(image.shape, np.uint8), np.zeros(image.shape, np.uint8)
    lung[:, 1:11, 1:11] = 1
    gtv[1, 4:7, 4:7] = 1                 # inside the lung: a separate structure set
    write_rtstruct(lung, source, {1: "Lung-Left"}, folder / "lung.dcm")
    write_rtstruct(gtv, source, {1: "GTV-1"}, folder / "gtv.dcm")
    argv = ["dataset", "convert", "dicom", str(tmp_path / "src"), "--name", "O", "--raw", str(tmp_path / "raw"),
            "--channel", "CT=CT", "--label", "lung=Lung*", "--label", "gtv=GTV*"]
    assert main(argv + ["--id", "313", "--overlap", "error"]) == 1
    assert "Case case1: gtv overlaps label(s) [1] in 9 voxels" in capsys.readouterr().err
    assert main(argv + ["--id", "314"]) == 0
    assert "9 voxels where gtv overlaps an earlier label were given to gtv" in capsys.readouterr().out
    labels = read_labels(tmp_path / "raw" / "Dataset314_O" / "labelsTr" / "case1.nii.gz")
    assert np.count_nonzero(labels == 2) == 9 and np.count_nonzero(labels == 1) == 3 * 100 - 9
