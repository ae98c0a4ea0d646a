"""``medseg dicom`` (list, convert) and ``medseg predict`` on a DICOM folder with DICOM-SEG output."""
from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))  # the series factory beside this file
from dicom_helpers import (make_volume, oblique_orientation, run_dcm2niix, totalseg_ct_dir,  # noqa: E402
                                write_phantom_study, write_series)

from chimerax.medseg.cli import main  # noqa: E402


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_shows_number_modality_size_and_description(tmp_path, capsys):
    write_series(tmp_path / "d" / "x", make_volume((3, 4, 5)), series_number=2, description="Body 3.0")
    write_series(tmp_path / "d" / "y", make_volume((7, 6, 5)), series_number=11, description="T2 ax", modality="MR")
    code, out, _ = run_cli(capsys, "dicom", tmp_path / "d")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 2
    assert "2" in lines[0] and "CT" in lines[0] and "5x4x3" in lines[0] and "Body 3.0" in lines[0]
    assert "11" in lines[1] and "MR" in lines[1] and "5x6x7" in lines[1] and "T2 ax" in lines[1]


def test_real_ct_conversion_equals_dcm2niix(tmp_path, capsys):
    out = tmp_path / "ct.nii.gz"
    code, stdout, _ = run_cli(capsys, "dicom", totalseg_ct_dir(), "-o", out)
    assert code == 0 and str(out) in stdout
    ours = nib.load(str(out))
    (reference,) = run_dcm2niix(totalseg_ct_dir(), tmp_path / "ref")
    theirs = nib.load(str(reference))
    assert ours.get_data_dtype() == np.int16  # whole HU values are stored as integers
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-4)
    np.testing.assert_array_equal(ours.get_fdata(), theirs.get_fdata())
    assert ours.header["qform_code"] == 1 and ours.header["sform_code"] == 1


def test_choice_into_a_folder_and_all_series(tmp_path, capsys):
    write_series(tmp_path / "d" / "a", make_volume((3, 4, 4)), series_number=3, description="Abdomen 1.0",
                 orientation=oblique_orientation(15))
    write_series(tmp_path / "d" / "b", make_volume((4, 4, 4)), series_number=4, description="Gap",
                 slice_offsets=[0, 1, 2, 4])
    code, _, _ = run_cli(capsys, "dicom", tmp_path / "d", "-o", tmp_path / "one", "-s", "abdomen")
    assert code == 0 and [p.name for p in (tmp_path / "one").iterdir()] == ["3_Abdomen_1.0.nii.gz"]
    # --all: the good series is written, the uneven one refused with a clear message, nothing half
    code, _, err = run_cli(capsys, "dicom", tmp_path / "d", "-o", tmp_path / "all", "--all")
    assert code == 1 and "not evenly spaced" in err and "missing" in err
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["3_Abdomen_1.0.nii.gz"]
    code, _, err = run_cli(capsys, "dicom", tmp_path / "d", "-o", tmp_path / "all", "--all", "--resample-uneven")
    assert code == 0 and "interpolated" in err
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["3_Abdomen_1.0.nii.gz", "4_Gap.nii.gz"]
    assert nib.load(str(tmp_path / "all" / "4_Gap.nii.gz")).shape == (4, 4, 5)


def test_predict_on_dicom_folder_writes_dicom_seg(tmp_path, capsys):
    from chimerax.medseg.images.dicom import read_dicom_volume
    from chimerax.medseg.images.dicom_seg import read_segmentation
    from chimerax.medseg.inference.predictor import example_model_path
    model = example_model_path()
    assert (model / "dataset.json").is_file(), f"the embedded example model is missing: {model}"
    # the example model takes four MR series of one study (T1, T1ce, T2, Flair): a phantom's channels
    write_phantom_study(tmp_path / "d")
    out = tmp_path / "out" / "seg.dcm"
    code, _, err = run_cli(capsys, "predict", "-m", model, "-i", tmp_path / "d", "-o", out,
                           "--output-format", "dicom-seg", "--fast", "--quiet", "--device", "cpu")
    assert code == 1 and "T1ce" in err and "Flair" in err  # four series and no choice: they are listed
    series = ["--series", "T1", "T1ce", "T2", "Flair"]
    code, _, err = run_cli(capsys, "predict", "-m", model, "-i", tmp_path / "d", "-o", out, *series,
                           "--output-format", "dicom-seg", "--fast", "--quiet", "--device", "cpu")
    assert code == 0, err
    code, _, _ = run_cli(capsys, "predict", "-m", model, "-i", tmp_path / "d", "-o", tmp_path / "out" / "seg.nii.gz",
                         *series, "--fast", "--quiet", "--device", "cpu")
    assert code == 0
    _, source = read_dicom_volume(tmp_path / "d", "T1")
    labels, names = read_segmentation(out, source)
    nifti = np.asarray(nib.load(str(tmp_path / "out" / "seg.nii.gz")).dataobj).transpose(2, 1, 0)
    np.testing.assert_array_equal(labels, nifti)  # the same prediction, in both formats
    assert set(names) >= set(int(v) for v in np.unique(labels) if v)
    assert set(np.unique(labels)) >= {1, 3}  # the phantom's tumour is found (oedema, enhancing rim)
