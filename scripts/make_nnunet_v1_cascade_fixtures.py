"""Make the nnU-Net v1 cascade fixture (tests/data/nnunet_v1_cascade/) with the real nnunet 1.7.1.

Run with the main venv (it writes the synthetic data); v1 runs in its own venv
(``bash scripts/setup_nnunet_v1_env.sh``), through scripts/nnunet_v1_cascade_steps.py:

    .venv/bin/python scripts/make_nnunet_v1_cascade_fixtures.py [--work /tmp/nnunet_v1_cascade_work]

1. Task904_V1Cascade: 8 two-channel MRI phantoms (labels 1 edema, 2 core), 1.5 mm, ~40x48x40 voxels,
   and two test cases (typical; cropped: a wide uneven zero border);
2. v1's planner and preprocessor (3D) with a lowered reference VRAM, so that v1 itself plans the
   low-resolution stage; 3. untrained but confident networks built by the published trainer classes
   nnUNetTrainerV2 (3d_lowres) and nnUNetTrainerV2CascadeFullRes (3d_cascade_fullres), fold 0;
4. ``nnUNet_predict`` of 3d_lowres, then of 3d_cascade_fullres with ``-l`` those lowres labels (``-z``).
The model folders (v1's layout under ``nnUNet/``), the cases and v1's outputs are copied to the fixture.
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
from make_nnunet_v1_fixtures import save, v1_env, with_zero_border  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "nnunet_v1_cascade"
STEPS = Path(__file__).resolve().parent / "nnunet_v1_cascade_steps.py"
TASK_ID, TASK = 904, "Task904_V1Cascade"
SPACING = (1.5, 1.5, 1.5)
NUM_TRAINING = 8


def write_raw_task(raw: Path, cases: Path) -> None:
    folder = raw / "nnUNet_raw_data" / TASK
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(TASK_ID)
    training = []
    for i in range(NUM_TRAINING):
        shape = tuple(int(n) for n in np.array([40, 48, 40]) + rng.integers(-3, 4, 3))
        image, labels = nnunet_phantom.make_phantom(rng, shape, SPACING)
        save(image, labels, SPACING, folder / "imagesTr", f"case_{i:03d}", folder / "labelsTr")
        training.append({"image": f"./imagesTr/case_{i:03d}.nii.gz", "label": f"./labelsTr/case_{i:03d}.nii.gz"})
    cases.mkdir(parents=True, exist_ok=True)
    for kind in ("typical", "cropped"):
        image, labels = nnunet_phantom.make_phantom(rng, (42, 46, 40), SPACING)
        if kind == "cropped":
            image, labels = with_zero_border(image, labels)
        save(image, None, SPACING, cases, kind, None)
    dataset = {"name": "V1Cascade", "description": "MedSeg synthetic phantoms for the nnU-Net v1 cascade",
               "reference": "MedSeg", "licence": "CC0-1.0", "release": "1.0", "tensorImageSize": "4D",
               "modality": {"0": "T1", "1": "T2"}, "labels": {"0": "background", "1": "edema", "2": "core"},
               "numTraining": len(training), "numTest": 0, "training": training, "test": []}
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))


def run(cmd: list[str], env: dict) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, env=env, check=True)


def collect(work: Path) -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    results = work / "results" / "nnUNet"
    for configuration in ("3d_lowres", "3d_cascade_fullres"):
        for model in (results / configuration / TASK).iterdir():
            target = OUT / "nnUNet" / configuration / TASK / model.name
            (target / "fold_0").mkdir(parents=True)
            shutil.copy(model / "plans.pkl", target / "plans.pkl")
            for f in ("model_final_checkpoint.model", "model_final_checkpoint.model.pkl"):
                shutil.copy(model / "fold_0" / f, target / "fold_0" / f)
    shutil.copytree(work / "cases", OUT / "cases")
    for configuration in ("3d_lowres", "3d_cascade_fullres"):
        out = OUT / "v1_outputs" / configuration
        out.mkdir(parents=True)
        for f in (work / "predictions" / configuration).iterdir():
            if f.suffix in (".gz", ".npz", ".pkl") and f.name != "plans.pkl":
                shutil.copy(f, out / f.name)
    print("fixture in", OUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/nnunet_v1_cascade_work"))
    parser.add_argument("--v1-python", default=str(ROOT / ".venv-nnunet1" / "bin" / "python"))
    parser.add_argument("--from-stage", choices=["data", "build", "predict", "collect"], default="data",
                        help="resume from this stage (the earlier ones' results in --work are kept)")
    args = parser.parse_args()
    env = v1_env(args.work)
    env["PATH"] = str(Path(args.v1_python).parent) + os.pathsep + env["PATH"]
    stages = ["data", "build", "predict", "collect"]
    todo = stages[stages.index(args.from_stage):]
    if "data" in todo:
        shutil.rmtree(args.work, ignore_errors=True)
        write_raw_task(args.work / "raw", args.work / "cases")
        run([args.v1_python, str(STEPS), "plan", str(TASK_ID)], env)
    if "build" in todo:
        run([args.v1_python, str(STEPS), "build", str(TASK_ID)], env)
    if "predict" in todo:
        run([args.v1_python, str(STEPS), "predict", str(TASK_ID), str(args.work / "cases"),
             str(args.work / "predictions")], env)
    collect(args.work)


if __name__ == "__main__":
    main()
