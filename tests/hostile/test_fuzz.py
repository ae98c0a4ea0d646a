"""Fuzz layer: mutated NIfTI, DICOM, zip and JSON files through the readers and the CLI.

Each target asserts the project's promise for hostile input: a valid result, or one clear
MedSegError (on the command line: exit 1 with one ``medseg: error:`` line), never another
exception, a traceback or a hang. Examples are derandomized (the same in every CI run) and
bounded; set MEDSEG_FUZZ_EXAMPLES (and MEDSEG_FUZZ_RANDOM=1 for fresh seeds) to search longer.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import signal
import warnings
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hostile_helpers import Hung, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from dicom_helpers import make_volume, write_series

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.images import Image, read_image
from chimerax.medseg.images.dicom import read_dicom_series
from chimerax.medseg.models.archive import safe_extract_zip
from chimerax.medseg.models.labels import LabelScheme
from chimerax.medseg.models.model_folder import open_model_folder

EXAMPLES = int(os.environ.get("MEDSEG_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("MEDSEG_FUZZ_RANDOM"),
                database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
HANG_SECONDS = 20
TRIED: dict[str, int] = {}  # hostile inputs tried per target (printed at the end of the session)


@contextlib.contextmanager
def no_hang(what: str):
    """Fail (instead of blocking CI) when one example runs past HANG_SECONDS."""
    def alarm(signum, frame):
        raise Hung(f"{what} hung for more than {HANG_SECONDS} s")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    TRIED[what] = TRIED.get(what, 0) + 1


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None, hot: int) -> bytes:
    """Overwrite bytes (positions biased to the first ``hot`` bytes, the header) and maybe truncate."""
    out = bytearray(data)
    for position, value in edits:
        where = position % hot if position % 3 else position % len(out)
        out[where] = value
    if cut is not None:
        out = out[: cut % (len(out) + 1)]
    return bytes(out)


edits = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=12)
cuts = st.none() | st.integers(0, 1 << 20)


def expect_clean(call):
    """Run ``call``; return its result, or None for a MedSegError. Any other exception fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # warnings are allowed: they are how skipped things are named
        try:
            return call()
        except MedSegError as exc:
            assert str(exc) and "\n" not in str(exc).strip() or "DICOM" in str(exc), str(exc)
            return None


def check_image(image: Image | None) -> None:
    if image is None:
        return
    assert image.array.ndim == 4 and image.array.dtype == np.float32
    assert all(np.isfinite(s) and s > 0 for s in image.spacing)
    assert np.isfinite(image.affine).all() and abs(np.linalg.det(image.affine[:3, :3])) > 0


# --- NIfTI ----------------------------------------------------------------------------------

def _nifti_bytes(dtype=np.int16) -> bytes:
    data = (np.arange(5 * 6 * 7) % 97).reshape(5, 6, 7).astype(dtype)
    image = nib.Nifti1Image(data, np.diag([1.5, 0.8, 2.0, 1]))
    return image.to_bytes()


NIFTI = {dtype: _nifti_bytes(dtype) for dtype in (np.int16, np.float32)}


@FUZZ
@given(edits=edits, cut=cuts, dtype=st.sampled_from(sorted(NIFTI, key=str)), gz=st.booleans())
def test_fuzz_nifti_reader(tmp_path, edits, cut, dtype, gz):
    data = mutate(NIFTI[dtype], edits, cut, 352)
    path = tmp_path / ("f.nii.gz" if gz else "f.nii")
    path.write_bytes(gzip.compress(data) if gz else data)
    with no_hang("NIfTI reader"):
        check_image(expect_clean(lambda: read_image(path)))


# --- DICOM ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dicom_series(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dicom") / "series"
    write_series(folder, make_volume((3, 8, 8)))
    return folder


@FUZZ
@given(edits=edits, cut=cuts, which=st.integers(0, 2))
def test_fuzz_dicom_reader(dicom_series, tmp_path_factory, edits, cut, which):
    folder = tmp_path_factory.mktemp("d") / "series"
    shutil.copytree(dicom_series, folder)
    victim = sorted(folder.iterdir())[which]
    victim.write_bytes(mutate(victim.read_bytes(), edits, cut, 1200))
    with no_hang("DICOM reader"):
        image = expect_clean(lambda: read_dicom_series(folder))
    check_image(image)
    if image is not None:  # a series read whole keeps the header's promise: 8 x 8 pixels per slice
        assert image.shape[1:] == (8, 8)


# --- zip archives ---------------------------------------------------------------------------

def _model_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("m/dataset.json", json.dumps({"labels": {"background": 0, "a": 1}}))
        zf.writestr("m/plans.json", json.dumps({"configurations": {"3d_fullres": {}}}) * 5)
        zf.writestr("m/fold_0/checkpoint_final.pth", os.urandom(3000))
        zf.writestr("m/notes.txt", "x" * 5000)
    return buffer.getvalue()


ZIP = _model_zip()


@FUZZ
@given(edits=edits, cut=cuts)
def test_fuzz_zip_extraction(tmp_path_factory, edits, cut):
    root = tmp_path_factory.mktemp("z")
    archive = root / "m.zip"
    archive.write_bytes(mutate(ZIP, edits, cut, len(ZIP)))
    dest = root / "out"
    with no_hang("zip extraction"):
        expect_clean(lambda: safe_extract_zip(archive, dest))
    inside = [p.resolve() for p in root.rglob("*")]
    assert all(p.is_relative_to(root.resolve()) for p in inside)  # nothing escaped
    if not dest.exists():  # refused: no half-extracted folder either
        assert not [p for p in root.iterdir() if p.name not in ("m.zip",)]


# --- JSON: dataset.json labels and plans ----------------------------------------------------

json_values = st.recursive(st.none() | st.booleans() | st.integers(-3, 2**40) | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                        max_size=4),
                           max_leaves=12)


@FUZZ
@given(labels=json_values, order=json_values)
def test_fuzz_label_schemes(labels, order):
    with no_hang("label scheme"):
        scheme = expect_clean(lambda: LabelScheme.from_dataset_json({"labels": labels, "regions_class_order": order}))
    if scheme is not None:
        assert scheme.num_outputs >= 1 and all(isinstance(v, int) for v in scheme.names)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    from inference_helpers import make_model
    return make_model(tmp_path_factory.mktemp("fuzz_model"), {"background": 0, "a": 1})


@FUZZ
@given(edits=edits, cut=cuts, which=st.sampled_from(["plans.json", "dataset.json"]))
def test_fuzz_model_json(model_folder, tmp_path_factory, edits, cut, which):
    folder = tmp_path_factory.mktemp("mj") / model_folder.name
    shutil.copytree(model_folder, folder, ignore=shutil.ignore_patterns("fold_*"))
    target = folder / which
    target.write_bytes(mutate(target.read_bytes(), edits, cut, len(target.read_bytes())))
    with no_hang("model JSON"):
        expect_clean(lambda: open_model_folder(folder))


# --- the command line -----------------------------------------------------------------------

def _assert_cli_clean(code: int, err: str) -> None:
    assert code in (0, 1), err
    assert "Traceback" not in err and "internal error" not in err, err
    if code == 1:
        assert sum(line.startswith("medseg: error:") for line in err.splitlines()) == 1, err


@pytest.fixture(scope="module")
def label_pair(tmp_path_factory) -> tuple[bytes, Path]:
    root = tmp_path_factory.mktemp("ev")
    labels = np.zeros((6, 7, 8), np.uint8)
    labels[1:4, 2:5, 3:6] = 1
    nib.save(nib.Nifti1Image(labels, np.eye(4)), str(root / "c.nii"))
    return (root / "c.nii").read_bytes(), root


@FUZZ
@given(edits=edits, cut=cuts)
def test_fuzz_cli_evaluate(label_pair, tmp_path_factory, capsys, edits, cut):
    data, _ = label_pair
    root = tmp_path_factory.mktemp("e")
    (root / "pred").mkdir()
    (root / "ref").mkdir()
    (root / "ref" / "c.nii").write_bytes(data)
    (root / "pred" / "c.nii").write_bytes(mutate(data, edits, cut, 352))
    with no_hang("CLI evaluate"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, _, err = run_cli(capsys, "evaluate", root / "pred", root / "ref", "-o", root / "results")
    _assert_cli_clean(code, err)


@FUZZ
@given(edits=edits, cut=cuts, which=st.integers(0, 2))
def test_fuzz_cli_dicom(dicom_series, tmp_path_factory, capsys, edits, cut, which):
    root = tmp_path_factory.mktemp("dc")
    folder = root / "series"
    shutil.copytree(dicom_series, folder)
    victim = sorted(folder.iterdir())[which]
    victim.write_bytes(mutate(victim.read_bytes(), edits, cut, 1200))
    with no_hang("CLI dicom"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, _, err = run_cli(capsys, "dicom", folder, "-o", root / "ct.nii.gz")
    _assert_cli_clean(code, err)
    if code == 1:
        assert not (root / "ct.nii.gz").exists()


@pytest.fixture(scope="module")
def predict_case(tmp_path_factory) -> bytes:
    root = tmp_path_factory.mktemp("pc")
    data = np.random.default_rng(0).normal(100, 10, (12, 14, 6)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 2.0, 1])), str(root / "c_0000.nii"))
    return (root / "c_0000.nii").read_bytes()


@pytest.fixture(scope="module")
def one_channel_model(tmp_path_factory) -> Path:
    from inference_helpers import make_model
    folder = make_model(tmp_path_factory.mktemp("m1"), {"background": 0, "a": 1})
    # a one-channel variant of the tiny model: drop the second channel from dataset.json and plans
    dataset = json.loads((folder / "dataset.json").read_text())
    dataset["channel_names"] = {"0": "T1"}
    (folder / "dataset.json").write_text(json.dumps(dataset))
    plans = json.loads((folder / "plans.json").read_text())
    plans["configurations"]["3d_fullres"]["normalization_schemes"] = ["ZScoreNormalization"]
    plans["configurations"]["3d_fullres"]["use_mask_for_norm"] = [False]
    (folder / "plans.json").write_text(json.dumps(plans))
    return folder


# the voxel data and the data-type fields; the geometry fields are the NIfTI reader target's job
# (a mutated but valid spacing can ask for an honest, hours-long prediction)
_PREDICT_HOT = (70, 71, 72, 73, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119)


@settings(FUZZ, max_examples=max(5, EXAMPLES // 4))
@given(data_edits=st.lists(st.tuples(st.integers(352, 352 + 12 * 14 * 6 * 4 - 1), st.integers(0, 255)),
                           max_size=40),
       header_edits=st.lists(st.tuples(st.sampled_from(_PREDICT_HOT), st.integers(0, 255)), max_size=3),
       cut=st.none() | st.integers(300, 352 + 12 * 14 * 6 * 4))
def test_fuzz_cli_predict(predict_case, one_channel_model, tmp_path_factory, capsys, data_edits, header_edits, cut):
    root = tmp_path_factory.mktemp("p")
    out = bytearray(predict_case)
    for position, value in data_edits + header_edits:
        out[position] = value
    (root / "c_0000.nii").write_bytes(bytes(out[:cut]) if cut is not None else bytes(out))
    with no_hang("CLI predict"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, _, err = run_cli(capsys, "predict", "--quiet", "--device", "cpu", "--fast", "-m", one_channel_model,
                               "-i", root / "c_0000.nii", "-o", root / "out")
    _assert_cli_clean(code, err)
    written = list((root / "out").glob("*")) if (root / "out").exists() else []
    if code == 0:
        labels = np.asarray(nib.load(str(root / "out" / "c.nii.gz")).dataobj)
        assert set(np.unique(labels)) <= {0, 1}
    else:
        assert written == []


def test_fuzz_counts_are_reported(capsys):
    """Last in the file: how many hostile inputs each target saw in this run (for the notes)."""
    with capsys.disabled():
        print("\nfuzz inputs tried:", ", ".join(f"{k}: {v}" for k, v in sorted(TRIED.items())))
