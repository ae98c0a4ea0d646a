"""Memory bombs, evaluation, datasets and numeric options: refused up front with one line, or handled."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hostile_helpers import assert_one_error_line, run_cli, write_nifti

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.images import Image
from chimerax.medseg.inference.predictor import Predictor
from chimerax.medseg.memory import available_memory, check_memory

sys.path.insert(0, str(Path(__file__).parents[1] / "planning"))
from planning_helpers import make_dataset  # noqa: E402


def test_tiny_image_with_1500_mm_voxels_is_refused_before_resampling(tiny_model):
    predictor = Predictor.from_folder(tiny_model, device="cpu", fast=True)
    image = Image(np.ones((2, 4, 4, 4), np.float32), (1500.0, 1500.0, 1500.0))  # resampled: 3000 x 6000 x 6000
    with pytest.raises(MedSegError, match=r"would need .* of memory.*voxel spacing"):
        predictor.predict(image)


def test_the_memory_check_compares_with_what_is_free():
    free = available_memory()
    assert free > 0
    check_memory(free // 100, "a small array", "")
    with pytest.raises(MedSegError, match="is available"):
        check_memory(free * 2, "twice the free memory", "Change something.")


# --- evaluation -----------------------------------------------------------------------------

def _label_pair(tmp_path, ref_value):
    pred = np.zeros((6, 6, 6), np.int32)
    pred[1:3, 1:3, 1:3] = 1
    ref = pred.copy()
    ref[3:5, 3:5, 3:5] = ref_value
    write_nifti(tmp_path / "pred" / "c.nii.gz", pred)
    write_nifti(tmp_path / "ref" / "c.nii.gz", ref)


def test_a_label_value_of_two_billion_is_scored_not_allocated(tmp_path, capsys):
    _label_pair(tmp_path, 2_000_000_000)
    code, out, err = run_cli(capsys, "evaluate", tmp_path / "pred", tmp_path / "ref", "-o", tmp_path / "ev")
    assert code == 0, err
    assert "2000000000" in out


def test_a_singular_affine_in_evaluation_is_one_error_line(tmp_path, capsys):
    _label_pair(tmp_path, 1)
    path = tmp_path / "pred" / "c.nii.gz"
    image = nib.load(str(path))
    header = image.header.copy()
    header["sform_code"], header["qform_code"] = 1, 0
    header["srow_x"] = header["srow_y"] = header["srow_z"] = [0, 0, 0, 0]
    raw = path.with_suffix("")  # .nii, so the header bytes can be written as they are
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), np.eye(4)), str(raw))
    raw.write_bytes(header.binaryblock + raw.read_bytes()[len(header.binaryblock):])
    path.unlink()
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "pred", tmp_path / "ref", "-o", tmp_path / "ev")
    assert_one_error_line(code, err, "orientation matrix")


# --- datasets -------------------------------------------------------------------------------

def _dataset(tmp_path):
    return make_dataset(tmp_path / "raw", 7, "Hostile", [(8, 9, 10)] * 4, [(2.0, 1.0, 1.0)] * 4, ["T1"], seed=1)


def test_a_truncated_image_under_parallel_verify_is_reported_not_raised(tmp_path, capsys, monkeypatch):
    folder = _dataset(tmp_path)
    image = folder / "imagesTr" / "case001_0000.nii.gz"
    original = nib.load(str(image))
    data = np.random.default_rng(0).random(original.shape, dtype=np.float32)  # incompressible voxels
    write_nifti(image, data, affine=original.affine)
    image.write_bytes(image.read_bytes()[: len(image.read_bytes()) * 2 // 3])  # header whole, voxels cut
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    code, out, err = run_cli(capsys, "dataset", "verify", "7", "-np", "2")
    assert code == 1 and "Traceback" not in err, err
    assert "case001" in out


@pytest.mark.parametrize("content", [b"\xff\xfe\x00{", b"[1, 2, 3]", b"{\"labels\": ", b"null"])
def test_a_bad_dataset_json_is_reported(tmp_path, capsys, monkeypatch, content):
    folder = _dataset(tmp_path)
    (folder / "dataset.json").write_bytes(content)
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    code, out, err = run_cli(capsys, "dataset", "verify", "7")
    assert code == 1 and "Traceback" not in err and "internal error" not in err, err
    assert "dataset.json" in out + err


@pytest.mark.parametrize("argv, option", [
    (["dataset", "phantom", "--id", "12", "--cases", "-3"], "--cases"),
    (["dataset", "phantom", "--id", "12", "--cases", "0"], "--cases"),
    (["dataset", "verify", "7", "-np", "0"], "--processes"),
    (["plan", "7", "--base-features", "0"], "--base-features"),
    (["plan", "7", "--base-features", "8", "--max-features", "-8"], "--max-features"),
    (["plan", "7", "--gpu-memory", "nan"], "--gpu-memory"),
    (["plan", "7", "-np", "-1"], "--processes"),
])
def test_numeric_options_out_of_range_are_refused_before_work(tmp_path, capsys, monkeypatch, argv, option):
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    code, _, err = run_cli(capsys, *argv, "--raw", tmp_path / "raw") if argv[1] == "phantom" else \
        run_cli(capsys, *argv)
    assert_one_error_line(code, err, option)
    assert not (tmp_path / "raw").exists()  # nothing was written


@pytest.mark.parametrize("part", ["3/2", "0/2", "x", "1/0"])
def test_predict_part_out_of_range_is_refused_before_the_model_loads(tiny_model, case_files, tmp_path, capsys, part):
    code, _, err = run_cli(capsys, "predict", "--quiet", "-m", tmp_path / "no-model", "-i", *case_files,
                           "-o", tmp_path / "o", "--part", part)
    assert_one_error_line(code, err, "--part")


# --- the one reporting place ----------------------------------------------------------------

def _demo_raising(monkeypatch, exc: BaseException) -> None:
    """Make `medseg demo` fail with ``exc``: the reporting under test is main()'s, not the command's."""
    from chimerax.medseg import demo

    def fail(args):
        raise exc
    monkeypatch.setattr(demo, "run", fail)


def test_an_unexpected_exception_prints_one_line_and_saves_the_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MEDSEG_LOG_DIR", str(tmp_path / "logs"))
    _demo_raising(monkeypatch, ZeroDivisionError("a bug"))
    code, _, err = run_cli(capsys, "demo")
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("medseg: internal error: ZeroDivisionError: a bug")
    saved = list((tmp_path / "logs").iterdir())
    assert len(saved) == 1 and str(saved[0]) in err
    assert "ZeroDivisionError: a bug" in saved[0].read_text() and "Traceback" in saved[0].read_text()


@pytest.mark.parametrize("exc, fragment", [
    (PermissionError(13, "Permission denied", "/x/y"), "Permission denied: /x/y"),
    (OSError(30, "Read-only file system", "/mnt/ro/out.nii.gz"), "Read-only file system"),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "not valid text"),
    (json.JSONDecodeError("Expecting value", "", 0), "not valid JSON"),
    (__import__("zipfile").BadZipFile("File is not a zip file"), "zip archive"),
])
def test_expected_failures_become_one_error_line(capsys, monkeypatch, exc, fragment):
    _demo_raising(monkeypatch, exc)
    code, _, err = run_cli(capsys, "demo")
    assert_one_error_line(code, err, fragment)
