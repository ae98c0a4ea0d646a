"""Steps of make_nnunet_v1_fixtures.py that run inside the nnU-Net v1 venv (.venv-nnunet1, numpy < 2).

    python nnunet_v1_steps.py train TASK_ID TRAINER CONFIGURATION FOLDS EPOCHS ITERATIONS
    python nnunet_v1_steps.py predict TASK_ID TRAINER CONFIGURATION FOLDS INPUT_DIR OUTPUT_DIR

Training uses v1's own planner, preprocessor and the published trainer class, as ``nnUNet_train`` does
(same constructor arguments, ``initialize``, ``run_training``); only three things differ, all set here
before training and said in tests/data/nnunet_v1/README.md: the plans' ``base_num_features`` is 4 (so the
committed checkpoints stay small), and the trainer instance's ``max_num_epochs`` / ``num_batches_per_epoch``
are small (a few minutes on a CPU). The trainer class and its name are the published ones.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

BASE_FEATURES = 4
PLANS = "nnUNetPlansv2.1"


def task_name(task_id: int) -> str:
    raw = Path(os.environ["nnUNet_raw_data_base"]) / "nnUNet_raw_data"
    return next(p.name for p in raw.iterdir() if p.name.startswith(f"Task{task_id}_"))


def plan(task_id: int, configuration: str) -> Path:
    task = task_name(task_id)
    suffix = "2D" if configuration == "2d" else "3D"
    plans_file = Path(os.environ["nnUNet_preprocessed"]) / task / f"{PLANS}_plans_{suffix}.pkl"
    if not plans_file.is_file():
        planners = ["-pl3d", "None"] if configuration == "2d" else ["-pl2d", "None"]
        subprocess.run(["nnUNet_plan_and_preprocess", "-t", str(task_id), "-tl", "1", "-tf", "1", *planners],
                       check=True)
        with open(plans_file, "rb") as f:
            plans = pickle.load(f)  # our own file, just written by v1's planner
        plans["base_num_features"] = BASE_FEATURES
        with open(plans_file, "wb") as f:
            pickle.dump(plans, f)
    return plans_file


def train(task_id: int, trainer_name: str, configuration: str, folds: list[int], epochs: int, iterations: int):
    import torch
    from nnunet.run.default_configuration import get_default_configuration
    torch.set_num_threads(1)
    plan(task_id, configuration)
    task = task_name(task_id)
    for fold in folds:
        plans_file, output_folder, dataset_directory, batch_dice, stage, trainer_class = \
            get_default_configuration(configuration, task, trainer_name, PLANS)
        trainer = trainer_class(plans_file, fold, output_folder=output_folder, dataset_directory=dataset_directory,
                                batch_dice=batch_dice, stage=stage, unpack_data=True, deterministic=False, fp16=True)
        trainer.max_num_epochs = epochs            # published default 1000
        trainer.num_batches_per_epoch = iterations  # published default 250
        trainer.num_val_batches_per_epoch = 2      # published default 50
        trainer.initialize(True)
        trainer.run_training()
    model_dir = Path(os.environ["RESULTS_FOLDER"]) / "nnUNet" / configuration / task / f"{trainer_name}__{PLANS}"
    write_postprocessing(model_dir, task_id)
    export_zip(task, trainer_name, configuration, folds)


def write_postprocessing(model_dir: Path, task_id: int) -> None:
    """A postprocessing.json in v1's format (nnUNet_determine_postprocessing insists on 5 folds):
    keep the largest connected foreground component; for the CT model also per class."""
    for_which = [[1, 2, 3]] if task_id == 901 else [[1, 2]] if task_id == 902 else [[1, 2], 2]
    spec = {"for_which_classes": for_which, "min_valid_object_sizes": "None",
            "dc_per_class_raw": {}, "dc_per_class_pp_all": {}, "dc_per_class_pp_per_class": {},
            "validation_raw": "validation_raw", "validation_final": "validation_final"}
    (model_dir / "postprocessing.json").write_text(json.dumps(spec, indent=4))


def export_zip(task: str, trainer_name: str, configuration: str, folds: list[int]) -> None:
    out = Path(os.environ["RESULTS_FOLDER"]).parent / "zips"
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["nnUNet_export_model_to_zip", "-t", task, "-o", str(out / f"{task}.zip"), "-m", configuration,
                    "-tr", trainer_name, "-f", *map(str, folds), "--disable_strict"], check=True)


def predict(task_id: int, trainer_name: str, configuration: str, folds: list[int], input_dir: str, output_dir: str):
    """v1's predictor: every fold alone and (with several) the ensemble, with and without mirroring."""
    runs = [[f] for f in folds] + ([folds] if len(folds) > 1 else [])
    for chosen in runs:
        for tta in (True, False):
            name = f"folds_{'_'.join(map(str, chosen))}_{'mirror' if tta else 'nomirror'}"
            cmd = ["nnUNet_predict", "-i", input_dir, "-o", str(Path(output_dir) / name), "-t", str(task_id),
                   "-m", configuration, "-tr", trainer_name, "-p", PLANS, "-f", *map(str, chosen), "-z",
                   "--num_threads_preprocessing", "1", "--num_threads_nifti_save", "1"]
            # v1 applies the model's postprocessing.json to these labels (the .npz holds the raw probabilities)
            subprocess.run(cmd + ([] if tta else ["--disable_tta"]), check=True)


def main() -> None:
    step, task_id, trainer_name, configuration, folds = sys.argv[1:6]
    fold_list = [int(f) for f in folds.split(",")]
    if step == "train":
        train(int(task_id), trainer_name, configuration, fold_list, int(sys.argv[6]), int(sys.argv[7]))
    else:
        predict(int(task_id), trainer_name, configuration, fold_list, sys.argv[6], sys.argv[7])


if __name__ == "__main__":
    main()
