"""`medseg predict` and the Python API: outputs on the input grid, cohorts split by --part, bad input refused."""
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from chimerax.medseg.cli import main
from chimerax.medseg.errors import MedSegError
from chimerax.medseg.images import read_case
from chimerax.medseg.inference.predictor import Predictor

from inference_helpers import write_case


def _predict(*args) -> int:
    return main(["predict", "--quiet", "--device", "cpu", *map(str, args)])


def test_single_case_keeps_geometry_and_matches_api(tiny_model, case_files, tmp_path):
    out = tmp_path / "out"
    assert _predict("-m", tiny_model, "-i", *case_files, "-o", out, "--save-probabilities") == 0
    label_file = out / "case.nii.gz"
    written = nib.load(str(label_file))
    source = nib.load(str(case_files[0]))
    np.testing.assert_allclose(written.affine, source.affine)
    assert written.shape == source.shape
    assert np.asarray(written.dataobj).dtype == np.uint8
    api = Predictor.from_folder(tiny_model, device="cpu").predict(read_case(case_files))
    np.testing.assert_array_equal(np.asarray(written.dataobj).transpose(2, 1, 0), api.labels)
    probabilities = np.load(out / "case.npz")["probabilities"]
    assert probabilities.shape == (3, *api.labels.shape)
    np.testing.assert_allclose(probabilities.sum(0), 1, atol=1e-4)
    assert not [p for p in out.iterdir() if ".part" in p.name]


def test_timings_split_the_run(tiny_model, case_files):
    timings = Predictor.from_folder(tiny_model, device="cpu").predict(read_case(case_files)).timings
    # the forward passes are part of the sliding-window stage, which is part of the whole
    assert 0 < timings["forward"] <= timings["network"] <= timings["total"]
    assert timings["preprocess"] + timings["network"] <= timings["total"]


def test_folder_split_into_parts_covers_every_case_once(tiny_model, tmp_path):
    cases = tmp_path / "cases"
    for i in range(3):
        write_case(cases, f"c{i}", shape=(6, 30, 28), seed=i)
    outs = []
    for part in ("1/2", "2/2"):
        out = tmp_path / f"out{part[0]}"
        assert _predict("-m", tiny_model, "-i", cases, "-o", out, "--part", part, "--fast") == 0
        outs.append(sorted(p.name for p in out.iterdir()))
    assert sorted(outs[0] + outs[1]) == ["c0.nii.gz", "c1.nii.gz", "c2.nii.gz"]
    assert not set(outs[0]) & set(outs[1])


def test_console_script_runs(tiny_model, case_files, tmp_path):
    exe = Path(sys.executable).with_name("medseg")
    result = subprocess.run([str(exe), "predict", "-m", str(tiny_model), "-i", *map(str, case_files),
                             "-o", str(tmp_path / "x.nii.gz"), "--fast", "--device", "cpu"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "x.nii.gz").is_file()


def _expect_error(capsys, tmp_path, pattern, *args):
    out = tmp_path / "out"
    assert _predict(*args, "-o", out) == 1
    err = capsys.readouterr().err
    assert pattern in err, err
    assert "Traceback" not in err
    assert not out.exists() or not any(out.rglob("*"))


def test_wrong_channel_count(tiny_model, case_files, tmp_path, capsys):
    _expect_error(capsys, tmp_path, "expects 2 channel(s) (T1, T2) but the input has 1",
                  "-m", tiny_model, "-i", case_files[0])


def test_nan_voxels(tiny_model, case_files, tmp_path, capsys):
    nii = nib.load(str(case_files[1]))
    data = np.asarray(nii.dataobj).copy()
    data[3, 4, 2] = np.nan
    data[5, 5, 5] = np.inf
    nib.save(nib.Nifti1Image(data, nii.affine), str(case_files[1]))
    _expect_error(capsys, tmp_path, "2 NaN or infinite voxels (channel(s) [1])", "-m", tiny_model, "-i", *case_files)


def test_wrong_dimensionality(tiny_model, tmp_path, capsys):
    path = tmp_path / "five_d_0000.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 2, 2), np.float32), np.eye(4)), str(path))
    _expect_error(capsys, tmp_path, "has 5 dimensions", "-m", tiny_model, "-i", path)


def test_channels_on_different_grids(tiny_model, case_files, tmp_path, capsys):
    other = write_case(tmp_path / "other", "other", shape=(9, 50, 40))
    _expect_error(capsys, tmp_path, "different grids", "-m", tiny_model, "-i", case_files[0], other[1])
    moved = np.array([[0, -0.9, 0, 12], [1.1, 0, 0, -20], [0, 0, 4.0, 5], [0, 0, 0, 1]])
    shifted = write_case(tmp_path / "shifted", "shifted", affine=moved)
    _expect_error(capsys, tmp_path, "different grids", "-m", tiny_model, "-i", case_files[0], shifted[1])


def test_missing_and_unreadable_files(tiny_model, case_files, tmp_path, capsys):
    _expect_error(capsys, tmp_path, "Input not found", "-m", tiny_model, "-i", case_files[0], tmp_path / "nope_0001.nii.gz")
    broken = tmp_path / "broken_0001.nii.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    _expect_error(capsys, tmp_path, "Cannot read", "-m", tiny_model, "-i", case_files[0], broken)


def test_missing_fold_and_missing_model(tiny_model, case_files, tmp_path, capsys):
    _expect_error(capsys, tmp_path, "no fold(s) 3; available folds: 0, 1", "-m", tiny_model, "-i", *case_files,
                  "--folds", "3")
    _expect_error(capsys, tmp_path, "not", "-m", tmp_path / "no_such_model", "-i", *case_files)


def test_model_with_mismatched_checkpoint(tiny_model, tiny_region_model, case_files, tmp_path):
    import shutil
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_model, mixed)
    shutil.copy(tiny_region_model / "fold_0" / "checkpoint_final.pth", mixed / "fold_1" / "checkpoint_final.pth")
    with pytest.raises(MedSegError, match="does not match the network"):
        Predictor.from_folder(mixed, folds=[1], device="cpu").predict(read_case(case_files))


def test_input_image_is_not_modified(tiny_model, case_files):
    image = read_case(case_files)
    before = image.array.copy()
    Predictor.from_folder(tiny_model, folds=[0], device="cpu", fast=True).predict(image)
    np.testing.assert_array_equal(image.array, before)


def test_unavailable_device_is_a_clear_error(tiny_model):
    import torch
    if torch.cuda.is_available():  # a GPU machine: cuda is accepted
        assert Predictor.from_folder(tiny_model, device="cuda").device.type == "cuda"
    else:
        with pytest.raises(MedSegError, match="cuda"):
            Predictor.from_folder(tiny_model, device="cuda")
    with pytest.raises(MedSegError, match="Unknown device"):
        Predictor.from_folder(tiny_model, device="tpu")


def test_a_cohort_runs_its_good_cases_and_names_each_bad_one(tiny_model, tmp_path, capsys):
    cases = tmp_path / "cases"
    write_case(cases, "good1")
    write_case(cases, "good2", seed=3)
    (cases / "notes_0000.nii.gz").write_bytes(b"not an image")     # a stray file, refused up front
    write_case(cases, "onechannel", channels=1, seed=5)             # fails when read against the model
    out = tmp_path / "out"
    assert main(["predict", "-m", str(tiny_model), "-i", str(cases), "-o", str(out), "--device", "cpu",
                 "--quiet"]) == 1
    err = capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["good1.nii.gz", "good2.nii.gz"]
    assert "2 of 4 case(s) were skipped" in err and "notes" in err and "onechannel" in err
    assert "Traceback" not in err
