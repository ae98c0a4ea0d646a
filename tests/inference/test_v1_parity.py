"""nnU-Net v1 zips installed and run by MedSeg give nnunet 1.7.1's own answers.

The fixtures (tests/data/nnunet_v1/, made by scripts/make_nnunet_v1_fixtures.py with the real
nnunet 1.7.1: its planner, its published trainer classes, its exporter and ``nnUNet_predict``) hold
three small models as v1's exporter zips them and v1's outputs for three cases each (anisotropic,
cropped, smaller than the patch), with and without mirroring, for single folds and the fold
ensemble: labels (after v1's postprocessing.json) and probabilities (``-z``, float16, on the
cropped grid whose box v1 records in the case's .pkl).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from chimerax.medseg.images import read_case, read_image
from chimerax.medseg.inference.predictor import Predictor
from chimerax.medseg.models.install import install_model
from chimerax.medseg.models.safe_pickle import load_data_pickle

DATA = Path(__file__).resolve().parent.parent / "data" / "nnunet_v1"
TASKS = ("Task901_V1BraTS", "Task902_V1MRI", "Task903_V1CT")
PROBABILITY_TOLERANCE = 0.02
MIN_DICE = 0.99


def _runs() -> list[tuple[str, str]]:
    return [(task, run.name) for task in TASKS for run in sorted((DATA / task / "v1_outputs").iterdir())]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Each fixture zip installed with the real install path into an isolated cache: name -> model folder."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDSEG_CACHE_DIR", str(cache))
        yield {task: install_model(task.lower(), DATA / f"{task}.zip") for task in TASKS}


def _folds_and_mirroring(run: str) -> tuple[list[str], bool]:
    parts = run.split("_")  # folds_0_1_mirror
    return parts[1:-1], parts[-1] == "mirror"


def _boundary_margin(probabilities: np.ndarray, region_based: bool) -> np.ndarray:
    """How far v1's own decision was from flipping, per voxel (0: a tie)."""
    if region_based:
        return np.abs(probabilities - 0.5).min(0)
    top2 = np.sort(probabilities, 0)[-2:]
    return (top2[1] - top2[0]) / 2


def compare_with_v1(prediction, reference_dir: Path, case: str, region_based: bool) -> dict[int, float]:
    """Check labels and probabilities of one case against v1's; return the per-class Dice."""
    reference = read_image(reference_dir / f"{case}.nii.gz").array[0].astype(np.int64)
    assert prediction.labels.shape == reference.shape
    v1_probabilities = np.load(reference_dir / f"{case}.npz")["softmax"].astype(np.float32)
    box = load_data_pickle(reference_dir / f"{case}.pkl")["crop_bbox"]  # v1's case record, read safely
    ours = prediction.probabilities[(slice(None),) + tuple(slice(int(a), int(b)) for a, b in box)]
    assert ours.shape == v1_probabilities.shape
    assert np.abs(ours - v1_probabilities).max() <= PROBABILITY_TOLERANCE

    differ = prediction.labels != reference
    # a voxel may differ only where v1 itself was within the probability tolerance of its decision boundary
    margin = np.full(reference.shape, np.inf, dtype=np.float32)
    margin[tuple(slice(int(a), int(b)) for a, b in box)] = _boundary_margin(v1_probabilities, region_based)
    assert (margin[differ] <= PROBABILITY_TOLERANCE).all()
    dice = {}
    for value in sorted(set(np.unique(reference)) - {0}):
        a, b = reference == value, prediction.labels == value
        dice[int(value)] = 2 * (a & b).sum() / (a.sum() + b.sum())
        if a.sum() >= 100:  # on a handful of voxels one borderline voxel is more than 1 %
            assert dice[int(value)] >= MIN_DICE, (case, value, dice[int(value)])
    return dice


@pytest.mark.parametrize("task, run", _runs())
def test_predictions_match_nnunet_v1(installed, task, run):
    folds, mirroring = _folds_and_mirroring(run)
    predictor = Predictor.from_folder(installed[task], folds=folds, mirroring=mirroring, postprocess=True)
    reference_dir = DATA / task / "v1_outputs" / run
    cases = sorted({p.name.rsplit("_", 1)[0] for p in (DATA / task / "cases").glob("*_0*.nii.gz")})
    assert len(cases) == 3
    for case in cases:
        image = read_case(sorted((DATA / task / "cases").glob(f"{case}_[0-9][0-9][0-9][0-9].nii.gz")))
        prediction = predictor.predict(image, save_probabilities=True)
        compare_with_v1(prediction, reference_dir, case, predictor.is_region_based)


def test_the_fixture_models_are_what_the_issue_asks_for(installed):
    brats = Predictor.from_folder(installed["Task901_V1BraTS"])
    assert brats.is_region_based and brats.model.trainer_name == "nnUNetTrainerV2BraTSRegions_DA4_BN"
    assert brats.channel_names == ["T1", "T1ce", "T2", "FLAIR"]
    assert "BatchNorm3d" in brats.model.configuration["architecture"]["arch_kwargs"]["norm_op"]
    mri = Predictor.from_folder(installed["Task902_V1MRI"])
    assert mri.model.folds == ["0", "1"] and not mri.is_region_based
    kernels = mri.model.configuration["architecture"]["arch_kwargs"]["conv_kernel_sizes"]
    assert kernels[0] != kernels[-1]  # anisotropic plans: v1's decoder-kernel rule matters
    ct = Predictor.from_folder(installed["Task903_V1CT"])
    assert ct.model.configuration_name == "2d"
    assert ct.model.configuration["normalization_schemes"] == ["CTNormalization"]


def test_zip_with_an_nnunet_root_installs_and_predicts_the_same(tmp_path, monkeypatch):
    """Published zips start with nnUNet/; v1's exporter writes <configuration>/ first. Both install."""
    monkeypatch.setenv("MEDSEG_CACHE_DIR", str(tmp_path / "cache"))
    task = "Task902_V1MRI"
    rooted = tmp_path / "rooted.zip"
    with zipfile.ZipFile(DATA / f"{task}.zip") as src, zipfile.ZipFile(rooted, "w") as dst:
        assert all(n.startswith("3d_fullres/") for n in src.namelist())
        for info in src.infolist():
            dst.writestr("nnUNet/" + info.filename, src.read(info))
    folder = install_model("rooted", rooted)
    assert folder.name == "rooted" and (folder / "nnUNet" / "3d_fullres" / task).is_dir()
    run = "folds_0_1_mirror"
    predictor = Predictor.from_folder(folder, folds=["0", "1"], postprocess=True)
    image = read_case(sorted((DATA / task / "cases").glob("aniso_[0-9][0-9][0-9][0-9].nii.gz")))
    compare_with_v1(predictor.predict(image, save_probabilities=True), DATA / task / "v1_outputs" / run, "aniso",
                    False)


def test_medseg_predict_runs_an_installed_v1_model(tmp_path):
    """The command line, by installed model name, as a user runs it."""
    env = {"MEDSEG_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    task = "Task901_V1BraTS"
    medseg = [sys.executable, "-m", "chimerax.medseg.cli"]
    out = subprocess.run(medseg + ["models", "install", "v1brats", str(DATA / f"{task}.zip")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    cases = tmp_path / "cases"
    shutil.copytree(DATA / task / "cases", cases)
    out = subprocess.run(medseg + ["predict", "-m", "v1brats", "-i", str(cases), "-o", str(tmp_path / "out"),
                                   "--postprocess", "--quiet"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for case in ("aniso", "cropped", "small"):
        ours = read_image(tmp_path / "out" / f"{case}.nii.gz").array[0]
        v1 = read_image(DATA / task / "v1_outputs" / "folds_0_mirror" / f"{case}.nii.gz").array[0]
        assert ours.shape == v1.shape and (ours == v1).mean() > 0.999
