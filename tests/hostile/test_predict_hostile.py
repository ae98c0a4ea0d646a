"""`medseg predict` with outputs that would destroy inputs, unusable paths, FIFOs, skipped labels."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from hostile_helpers import assert_one_error_line, files_under, run_cli
from inference_helpers import write_case

from chimerax.medseg.inference.export import probabilities_to_labels
from chimerax.medseg.models.labels import LabelScheme


def _predict(capsys, model, *args):
    return run_cli(capsys, "predict", "--quiet", "--device", "cpu", "--fast", "-m", model, *args)


def _digests(paths):
    return {p: p.read_bytes() for p in paths}


def test_output_equal_to_an_input_is_refused_and_the_scan_kept(tiny_model, case_files, capsys):
    before = _digests(case_files)
    code, _, err = _predict(capsys, tiny_model, "-i", *case_files, "-o", case_files[0])
    assert_one_error_line(code, err, "is one of the input files")
    assert _digests(case_files) == before


def test_output_folder_equal_to_the_input_folder_is_refused(tiny_model, tmp_path, capsys):
    cases = tmp_path / "cases"
    write_case(cases, "c0", shape=(6, 30, 28))
    before = files_under(cases)
    code, _, err = _predict(capsys, tiny_model, "-i", cases, "-o", cases)
    assert_one_error_line(code, err, "inside the input folder")
    code, _, err = _predict(capsys, tiny_model, "-i", cases, "-o", cases / "results")
    assert_one_error_line(code, err, "inside the input folder")
    assert files_under(cases) == before


def test_output_inside_a_dicom_input_folder_is_refused(tiny_model, tmp_path, capsys):
    from dicom_helpers import make_volume, write_series
    folder = tmp_path / "dicom"
    write_series(folder, make_volume((4, 8, 8)))
    code, _, err = _predict(capsys, tiny_model, "-i", folder, "-o", folder / "seg.nii.gz")
    assert_one_error_line(code, err, "inside the input folder")


def test_output_an_existing_folder_is_refused_before_any_work(tiny_model, case_files, tmp_path, capsys):
    (tmp_path / "taken.nii.gz").mkdir()
    code, _, err = _predict(capsys, tiny_model, "-i", *case_files, "-o", tmp_path / "taken.nii.gz")
    assert_one_error_line(code, err, "is an existing folder")


def test_output_below_a_file_is_refused(tiny_model, case_files, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code, _, err = _predict(capsys, tiny_model, "-i", *case_files, "-o", tmp_path / "afile" / "out")
    assert_one_error_line(code, err, "is a file, not a folder")


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process really cannot write into: a read-only one (as non-root) or sysfs (as root)."""
    if os.geteuid() != 0:
        folder = tmp_path / "readonly"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    return Path("/sys/kernel")


def test_unwritable_output_is_refused_before_the_first_case(tiny_model, case_files, tmp_path, capsys):
    folder = _unwritable_folder(tmp_path)
    code, out, err = _predict(capsys, tiny_model, "-i", *case_files, "-o", folder / "out")
    assert_one_error_line(code, err, "Cannot write into")
    assert "wrote" not in out  # refused before the prediction, not after it


def test_fifo_in_a_case_folder_is_skipped_and_named(tiny_model, tmp_path, capsys):
    cases = tmp_path / "cases"
    write_case(cases, "c0", shape=(6, 30, 28))
    os.mkfifo(cases / "pipe_0000.nii.gz")
    with pytest.warns(UserWarning, match="pipe_0000.nii.gz"):
        code, out, err = _predict(capsys, tiny_model, "-i", cases, "-o", tmp_path / "out")
    assert code == 0, err
    assert files_under(tmp_path / "out") == ["c0.nii.gz"]


def test_fifo_given_as_input_is_refused(tiny_model, tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe_0000.nii.gz")
    code, _, err = _predict(capsys, tiny_model, "-i", tmp_path / "pipe_0000.nii.gz", "-o", tmp_path / "o.nii.gz")
    assert_one_error_line(code, err, "not a regular file")


def test_fifo_in_a_dicom_folder_does_not_hang(tmp_path, capsys):
    from dicom_helpers import make_volume, write_series
    folder = tmp_path / "dicom"
    write_series(folder, make_volume((3, 6, 6)))
    os.mkfifo(folder / "zz_pipe")
    code, _, err = run_cli(capsys, "dicom", folder, "-o", tmp_path / "ct.nii.gz")
    assert code == 0, err
    assert "zz_pipe" in err and "not a regular file" in err  # the CLI prints the warning, naming it
    assert nib.load(str(tmp_path / "ct.nii.gz")).shape == (6, 6, 3)


def test_non_consecutive_labels_map_each_channel_to_its_declared_value():
    from chimerax.medseg.inference.export import channel_values  # new with the fix
    scheme = LabelScheme({1: "a", 5: "b"})
    assert channel_values(scheme).tolist() == [0, 1, 5]
    rng = np.random.default_rng(0)
    probabilities = torch.from_numpy(rng.random((3, 4, 5, 6)).astype(np.float32))
    labels = probabilities_to_labels(probabilities, scheme)
    winners = probabilities.argmax(0).numpy()
    np.testing.assert_array_equal(labels == 5, winners == 2)
    np.testing.assert_array_equal(labels == 1, winners == 1)
    assert set(np.unique(labels)) <= {0, 1, 5}


def test_a_model_with_labels_0_1_5_predicts_only_declared_values(skipping_model, case_files, tmp_path, capsys):
    code, _, err = _predict(capsys, skipping_model, "-i", *case_files, "-o", tmp_path / "seg.nii.gz",
                            "--save-probabilities")
    assert code == 0, err
    labels = np.asarray(nib.load(str(tmp_path / "seg.nii.gz")).dataobj)
    probabilities = np.load(tmp_path / "seg.npz")["probabilities"]  # (3, z, y, x)
    assert set(np.unique(labels)) <= {0, 1, 5}
    # the voxels labelled 5 are exactly those where the third channel wins
    np.testing.assert_array_equal(labels.transpose(2, 1, 0) == 5, probabilities.argmax(0) == 2)
    assert (labels == 5).any() or not (probabilities.argmax(0) == 2).any()


_SMALL_FILES = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the kernel then answers EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
from chimerax.medseg.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_failed_probabilities_write_leaves_no_label_file(tiny_model, case_files, tmp_path):
    out = tmp_path / "out"
    # the label map (a few KB) fits under the file-size limit; the probabilities (float32) do not
    result = subprocess.run([sys.executable, "-c", _SMALL_FILES, "8000", "predict", "--quiet", "--device", "cpu",
                             "--fast", "-m", str(tiny_model), "-i", *map(str, case_files), "-o", str(out),
                             "--save-probabilities"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("medseg: error:") == 1 and "Traceback" not in result.stderr, result.stderr
    assert files_under(out) == []
