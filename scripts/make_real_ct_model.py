#!/usr/bin/env python3
"""Train a small 3d_fullres model on real CT with MedSeg's own pipeline (the adaptive benchmark's real-CT model).

Usage (in the project's venv):
    OMP_NUM_THREADS=1 nice .venv/bin/python scripts/make_real_ct_model.py [--work DIR] [--epochs N] [--iterations N]

The data are TotalSegmentator 2.18.0's reference files (its PyPI sdist, fetched once):
- training: ``example_ct_sm.nii.gz`` (122 x 101 x 30 at 3 mm, T11-L2) and crops of it (z halves, left/right,
  front/back), so that three folds each have cases of their own;
- held out by every fold: ``example_ct_dicom/`` (20 slices of 512 x 512 at 0.98 x 0.98 x 2 mm), another patient
  (body and spleen sizes and the image content differ; the arms lie beside it), scored against
  ``example_seg_dicom.nii.gz``.
Both label maps are TotalSegmentator's output (model-made, not manual), merged here into five structures present
in both scans. Steps (each skipped when its result exists in --work): raw dataset, ``medseg plan`` (8 -> 32
features), ``medseg train`` folds 0-2 (scripts/realct_trainer.py: Adam), ``medseg predict`` of the held-out series
with the 3-fold ensemble, ``medseg evaluate`` against its labels. The model folder is then copied to --model-out.

Every ``medseg train`` here runs with --continue, so an interrupted run goes on where it stopped, and rerunning
with a smaller --epochs finishes each fold early: the model of benchmarks/README.md ran 10 epochs of the
25-epoch schedule (--parallel on a machine at load 8-12, ~150 s an epoch), then ``--epochs 11`` (one more epoch
at a low learning rate, then checkpoint_final and the folds' validation).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch_dicom_test_data import fetch_members  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WORK = REPO / "out" / "realct_training"  # /out/ is git-ignored
DATASET_ID, DATASET = 951, "Dataset951_RealCT"
CONFIGURATION, FOLDS = "3d_fullres", 3
TRAINER = Path(__file__).resolve().with_name("realct_trainer.py")
MODEL_NAME = "AdamTrainer__nnUNetPlans__3d_fullres"
LEARNING_RATE = 0.002
MEMBERS = ("tests/reference_files/example_ct_sm.nii.gz", "tests/reference_files/example_seg.nii.gz",
           "tests/reference_files/example_ct_dicom/", "tests/reference_files/example_seg_dicom.nii.gz")
# TotalSegmentator's 'total' class ids (its map_to_binary.class_map) merged into our five labels
STRUCTURES = {"liver": (5,), "spleen": (1,), "stomach": (6,), "vertebrae": tuple(range(26, 51)), "aorta": (52,)}
# training crops of the 3 mm CT, as (x, y, z) slices of its array: whole, z halves, left/right, front/back
CROPS = {
    "sm_whole": (slice(None), slice(None), slice(None)),
    "sm_inferior": (slice(None), slice(None), slice(0, 20)),
    "sm_superior": (slice(None), slice(None), slice(10, 30)),
    "sm_left": (slice(0, 80), slice(None), slice(None)),  # x grows towards the patient's right (RAS)
    "sm_right": (slice(42, 122), slice(None), slice(None)),
    "sm_anterior": (slice(None), slice(0, 70), slice(None)),
    "sm_posterior": (slice(None), slice(31, 101), slice(None)),
}
HELD_OUT = "dicom_series"
# The planner's patch is the whole 3 mm CT, (32, 112, 128); a quarter of it in-plane keeps the planned network
# (the same strides divide it) and makes CPU training ~3x cheaper per iteration. At prediction it also gives the
# held-out series (13 x 167 x 167 voxels at 3 mm) 25 tiles instead of 4, most of them far from any structure.
PATCH = (32, 64, 64)


def merged_labels(seg: np.ndarray) -> np.ndarray:
    out = np.zeros(seg.shape, np.uint8)
    for value, ids in enumerate(STRUCTURES.values(), start=1):
        out[np.isin(seg, ids)] = value
    return out


def save(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), str(path))


def cropped_affine(affine: np.ndarray, crop: tuple[slice, ...]) -> np.ndarray:
    start = [s.start or 0 for s in crop]
    out = affine.copy()
    out[:3, 3] = (affine @ np.array([*start, 1.0]))[:3]
    return out


def write_dataset(source: Path, raw: Path) -> Path:
    """The raw dataset: the 3 mm CT's crops in imagesTr/labelsTr, the held-out series' labels in labelsTs."""
    folder = raw / DATASET
    if (folder / "dataset.json").exists():
        return folder
    ct = nib.load(str(source / "example_ct_sm.nii.gz"))
    image = np.asarray(ct.dataobj).astype(np.int16)
    labels = merged_labels(np.asarray(nib.load(str(source / "example_seg.nii.gz")).dataobj))
    for name, crop in CROPS.items():
        affine = cropped_affine(ct.affine, crop)
        save(image[crop], affine, folder / "imagesTr" / f"{name}_0000.nii.gz")
        save(labels[crop], affine, folder / "labelsTr" / f"{name}.nii.gz")
    held = nib.load(str(source / "example_seg_dicom.nii.gz"))  # on the series' dcm2niix grid, as medseg reads it
    save(merged_labels(np.asarray(held.dataobj)), held.affine, folder / "labelsTs" / f"{HELD_OUT}.nii.gz")
    description = {"channel_names": {"0": "CT"},
                   "labels": {"background": 0, **{n: i for i, n in enumerate(STRUCTURES, start=1)}},
                   "numTraining": len(CROPS), "file_ending": ".nii.gz", "name": "RealCT",
                   "description": "crops of TotalSegmentator 2.18.0's example_ct_sm (labels: its model's, merged)"}
    (folder / "dataset.json").write_text(json.dumps(description, indent=2) + "\n")
    return folder


def medseg(env: dict, *args: str) -> None:
    command = [str(Path(sys.executable).with_name("medseg")), *args]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, env=env, check=True)


def set_patch(plans_file: Path) -> None:
    plans = json.loads(plans_file.read_text())
    plans["configurations"][CONFIGURATION]["patch_size"] = list(PATCH)
    plans_file.write_text(json.dumps(plans, indent=2) + "\n")


def train(env: dict, work: Path, epochs: int, iterations: int, parallel: bool) -> Path:
    model = work / "results" / DATASET / MODEL_NAME
    if not (work / "preprocessed" / DATASET / "nnUNetPlans.json").exists():
        medseg(env, "plan", str(DATASET_ID), "-c", CONFIGURATION, "--base-features", "8", "--max-features", "32",
               "-np", "1", "--quiet")
        set_patch(work / "preprocessed" / DATASET / "nnUNetPlans.json")
    todo = [str(f) for f in range(FOLDS) if not (model / f"fold_{f}" / "checkpoint_final.pth").exists()]
    if not todo:
        return model
    command = ["train", str(DATASET_ID), CONFIGURATION, "--num-folds", str(FOLDS),
               "--trainer", f"{TRAINER}:AdamTrainer", "--lr", str(LEARNING_RATE), "--epochs", str(epochs),
               "--iterations", str(iterations), "--val-iterations", "3", "--save-every", "5", "--workers", "1",
               "--device", "cpu", "--continue"]  # --continue: an interrupted run goes on where it stopped
    if not parallel:
        medseg(env, *command, "-f", *todo)
        return model
    # one process per fold (each single-threaded): on a machine shared with other jobs they get more of it
    runs = [subprocess.Popen([str(Path(sys.executable).with_name("medseg")), *command, "-f", f], env=env,
                             stdout=open(work / f"train_fold_{f}.log", "w"), stderr=subprocess.STDOUT) for f in todo]
    if any(run.wait() for run in runs):
        raise SystemExit(f"a fold failed: see {work}/train_fold_*.log")
    return model


def evaluate(env: dict, model: Path, source: Path, dataset: Path, work: Path) -> dict:
    predicted = work / "heldout"
    if not (predicted / f"{HELD_OUT}.nii.gz").exists():
        medseg(env, "predict", "-m", str(model), "-i", str(source / "example_ct_dicom"),
               "-o", str(predicted / f"{HELD_OUT}.nii.gz"), "--device", "cpu")
    medseg(env, "evaluate", str(predicted), str(dataset / "labelsTs"), "--dataset-json", str(dataset / "dataset.json"),
           "-o", str(work / "heldout_evaluation"))
    return json.loads((work / "heldout_evaluation" / "evaluation.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help=f"working folder (default {DEFAULT_WORK})")
    parser.add_argument("--model-out", type=Path, default=None,
                        help="copy the trained model folder here (default: leave it in WORK/results)")
    parser.add_argument("--epochs", type=int, default=25, help="epochs per fold (default 25)")
    parser.add_argument("--iterations", type=int, default=24, help="training iterations per epoch (default 24)")
    parser.add_argument("--parallel", action="store_true", help="train the folds at once, one process each")
    args = parser.parse_args()
    work = args.work.resolve()
    source = work / "source"
    fetch_members(MEMBERS, source)
    env = {**os.environ, "nnUNet_raw": str(work / "raw"), "nnUNet_preprocessed": str(work / "preprocessed"),
           "nnUNet_results": str(work / "results")}
    dataset = write_dataset(source, work / "raw")
    model = train(env, work, args.epochs, args.iterations, args.parallel)
    evaluate(env, model, source, dataset, work)
    if args.model_out:
        if args.model_out.exists():
            shutil.rmtree(args.model_out)
        shutil.copytree(model, args.model_out)
        print(f"model folder copied to {args.model_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
