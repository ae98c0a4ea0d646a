"""Make the nnU-Net v1 parity fixtures in tests/data/nnunet_v1/ with the real nnunet 1.7.1.

Run with the main venv (it writes the synthetic data with MedSeg's phantoms); nnU-Net v1 itself runs in
its own venv (numpy < 2), made by ``bash scripts/setup_nnunet_v1_env.sh``:

    .venv/bin/python scripts/make_nnunet_v1_fixtures.py [--work /tmp/nnunet_v1_work]

What it does, all with v1's own code (scripts/nnunet_v1_steps.py runs inside the v1 venv):
  1. three raw v1 tasks of synthetic data: Task901 (4-channel BraTS-like phantoms, labels 1 edema,
     2 necrosis, 3 enhancing), Task902 (2-channel MRI phantoms, labels 1 edema, 2 core), Task903
     (1-channel CT phantoms in HU, labels 1 organ, 2 lesion);
  2. ``nnUNet_plan_and_preprocess`` (v1's planner and preprocessor);
  3. training with published trainer classes, briefly: nnUNetTrainerV2BraTSRegions_DA4_BN (3d_fullres,
     fold 0), nnUNetTrainerV2 (3d_fullres, folds 0 and 1), nnUNetTrainerV2 (2d, fold 0);
  4. ``nnUNet_export_model_to_zip`` of each model (entries start at ``<configuration>/``);
  5. ``nnUNet_predict`` on three test cases per task (anisotropic, cropped with a wide zero border,
     smaller than the patch), with and without mirroring, single fold and the fold ensemble, saving
     probabilities (``-z``).
The models, the test cases and v1's outputs are copied to tests/data/nnunet_v1/ (see its README).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nnunet_phantom  # noqa: E402  (scripts/ is not a package)
from chimerax.medseg.datasets import phantom as brats_phantom  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "nnunet_v1"
STEPS = Path(__file__).resolve().parent / "nnunet_v1_steps.py"

# task id, name, channels, labels, trainer, configuration, folds
TASKS = [
    (901, "V1BraTS", ["T1", "T1ce", "T2", "FLAIR"], {"0": "background", "1": "edema", "2": "necrosis",
                                                      "3": "enhancing"},
     "nnUNetTrainerV2BraTSRegions_DA4_BN", "3d_fullres", [0]),
    (902, "V1MRI", ["T1", "T2"], {"0": "background", "1": "edema", "2": "core"},
     "nnUNetTrainerV2", "3d_fullres", [0, 1]),
    (903, "V1CT", ["CT"], {"0": "background", "1": "organ", "2": "lesion"},
     "nnUNetTrainerV2", "2d", [0]),
]
NUM_TRAINING = 10


def ct_phantom(rng: np.random.Generator, shape, spacing) -> tuple[np.ndarray, np.ndarray]:
    """(image int16 (1, z, y, x) in HU, labels uint8): air, a body, an organ (1) holding a lesion (2)."""
    grid = brats_phantom.physical_grid(shape, spacing)
    extent = np.array(shape) * np.array(spacing)
    centre = extent / 2 + rng.uniform(-2, 2, 3)
    body = brats_phantom.ellipsoid(grid, centre, extent * [0.6, 0.42, 0.45])
    organ_centre = centre + rng.uniform(-4, 4, 3)
    organ = brats_phantom.ellipsoid(grid, organ_centre, extent * rng.uniform(0.15, 0.22, 3)) & body
    lesion = brats_phantom.ellipsoid(grid, organ_centre + rng.normal(scale=2, size=3),
                                     extent * rng.uniform(0.05, 0.08, 3)) & organ
    bone = brats_phantom.ellipsoid(grid, centre + [0, extent[1] * 0.25, 0], extent * [0.6, 0.05, 0.05]) & body
    hu = np.full(shape, -1000.0)
    hu[body] = 30
    hu[bone] = 600
    hu[organ] = 70
    hu[lesion] = 130
    hu += rng.normal(scale=15, size=shape)
    labels = np.zeros(shape, np.uint8)
    labels[organ] = 1
    labels[lesion] = 2
    return np.round(hu)[None].astype(np.int16), labels


def make_case(task_id: int, rng: np.random.Generator, kind: str):
    """(image (c, z, y, x), labels, spacing) for a training case or a test case of ``kind``."""
    if task_id == 901:
        spacing = {"train": (3.5, 3.5, 3.5), "aniso": (11.0, 3.4, 3.4), "small": (3.5, 3.5, 3.5),
                   "cropped": (3.2, 3.7, 3.3)}[kind]
        shape = (18, 22, 20) if kind == "small" else None
        p = brats_phantom.make_phantom(rng, spacing=spacing, rotate=False, shape=shape)
        return p.image, p.labels, spacing
    if task_id == 902:
        # trained on anisotropic scans, so that v1's planner picks (1, 3, 3) kernels for the fine stages
        spacing = {"train": (4.0, 1.2, 1.2), "aniso": (5.0, 1.4, 1.4), "small": (4.0, 1.2, 1.2),
                   "cropped": (3.6, 1.1, 1.25)}[kind]
        extent_mm = (48.0, 54.0, 51.0) if kind != "small" else (28.0, 30.0, 33.0)
        shape = tuple(int(round(e / s)) for e, s in zip(extent_mm, spacing))
        image, labels = nnunet_phantom.make_phantom(rng, shape, spacing)
        return image, labels, spacing
    spacing = {"train": (2.5, 2.0, 2.0), "aniso": (8.0, 1.9, 1.9), "small": (2.5, 2.0, 2.0),
               "cropped": (2.5, 2.2, 1.8)}[kind]
    extent_mm = (40.0, 80.0, 76.0) if kind != "small" else (30.0, 50.0, 44.0)
    shape = tuple(int(round(e / s)) for e, s in zip(extent_mm, spacing))
    image, labels = ct_phantom(rng, shape, spacing)
    return image, labels, spacing


def with_zero_border(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pad unevenly with zeros, so that v1's crop to the non-zero box has work to do."""
    pads = [(0, 0), (3, 1), (6, 2), (1, 7)]
    return np.pad(image, pads), np.pad(labels, pads[1:])


def save(image: np.ndarray, labels: np.ndarray | None, spacing, folder: Path, name: str,
         label_folder: Path | None) -> None:
    affine = brats_phantom.affine_for(spacing, (-30.0, -40.0, 20.0))
    for c in range(image.shape[0]):
        brats_phantom.save_nifti(image[c], affine, folder / f"{name}_{c:04d}.nii.gz")
    if labels is not None and label_folder is not None:
        brats_phantom.save_nifti(labels, affine, label_folder / f"{name}.nii.gz")


def write_raw_task(raw: Path, test_root: Path, task) -> None:
    task_id, name, channels, labels, *_ = task
    folder = raw / "nnUNet_raw_data" / f"Task{task_id}_{name}"
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(task_id)
    training = []
    for i in range(NUM_TRAINING):
        image, seg, spacing = make_case(task_id, rng, "train")
        case = f"case_{i:03d}"
        save(image, seg, spacing, folder / "imagesTr", case, folder / "labelsTr")
        training.append({"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"})
    cases = test_root / f"Task{task_id}_{name}"
    cases.mkdir(parents=True, exist_ok=True)
    for kind in ("aniso", "cropped", "small"):
        image, seg, spacing = make_case(task_id, rng, kind)
        if kind == "cropped":
            image, seg = with_zero_border(image, seg)
        save(image, None, spacing, cases, kind, None)
    dataset = {"name": name, "description": "MedSeg synthetic phantoms for nnU-Net v1 parity tests",
               "reference": "MedSeg", "licence": "CC0-1.0", "release": "1.0", "tensorImageSize": "4D",
               "modality": {str(i): c for i, c in enumerate(channels)}, "labels": labels,
               "numTraining": len(training), "numTest": 0, "training": training, "test": []}
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))


def v1_env(work: Path) -> dict:
    env = dict(os.environ)
    env.update(nnUNet_raw_data_base=str(work / "raw"), nnUNet_preprocessed=str(work / "preprocessed"),
               RESULTS_FOLDER=str(work / "results"), nnUNet_n_proc_DA="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")  # v1's own torch.load of its checkpoints
    return env


def run(cmd: list[str], env: dict) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/nnunet_v1_work"))
    parser.add_argument("--v1-python", default=str(ROOT / ".venv-nnunet1" / "bin" / "python"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--stage", choices=["all", "data", "train", "predict", "collect"], default="all")
    args = parser.parse_args()
    work = args.work
    env = v1_env(work)
    bin_dir = str(Path(args.v1_python).parent)
    env["PATH"] = bin_dir + os.pathsep + env["PATH"]
    if args.stage in ("all", "data"):
        shutil.rmtree(work, ignore_errors=True)
        for task in TASKS:
            write_raw_task(work / "raw", work / "cases", task)
    if args.stage in ("all", "train"):
        for task_id, _name, _c, _l, trainer, config, folds in TASKS:
            run([args.v1_python, str(STEPS), "train", str(task_id), trainer, config, ",".join(map(str, folds)),
                 str(args.epochs), str(args.iterations)], env)
    if args.stage in ("all", "predict"):
        for task_id, name, _c, _l, trainer, config, folds in TASKS:
            run([args.v1_python, str(STEPS), "predict", str(task_id), trainer, config, ",".join(map(str, folds)),
                 str(work / "cases" / f"Task{task_id}_{name}"), str(work / "predictions" / f"Task{task_id}_{name}")],
                env)
    if args.stage in ("all", "collect"):
        collect(work)


def collect(work: Path) -> None:
    """Copy zips, test cases and v1's outputs (labels .nii.gz, probabilities .npz, properties .pkl)."""
    OUT.mkdir(parents=True, exist_ok=True)
    for task_id, name, *_ in TASKS:
        task = f"Task{task_id}_{name}"
        shutil.copy(work / "zips" / f"{task}.zip", OUT / f"{task}.zip")
        target = OUT / task
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(work / "cases" / task, target / "cases")
        for run_dir in sorted((work / "predictions" / task).iterdir()):
            out = target / "v1_outputs" / run_dir.name
            out.mkdir(parents=True)
            for f in run_dir.iterdir():
                if f.suffix in (".gz", ".npz", ".pkl") and f.name != "plans.pkl":
                    shutil.copy(f, out / f.name)
    print("fixtures in", OUT)


if __name__ == "__main__":
    main()
