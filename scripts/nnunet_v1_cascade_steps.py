"""Steps of make_nnunet_v1_cascade_fixtures.py that run inside the nnU-Net v1 venv (.venv-nnunet1).

    python nnunet_v1_cascade_steps.py plan TASK_ID
    python nnunet_v1_cascade_steps.py build TASK_ID
    python nnunet_v1_cascade_steps.py predict TASK_ID INPUT_DIR OUTPUT_DIR

plan: v1's own ``nnUNet_plan_and_preprocess`` (3D only) with one change: Generic_UNet's reference
VRAM value is lowered, which shrinks v1's patch below a quarter of the median image, so v1's planner
itself adds the low-resolution stage (3d_lowres + 3d_cascade_fullres). The plans' base_num_features
is then set to 4, as in nnunet_v1_steps.py (small checkpoints).
build: fold 0 of 3d_lowres (nnUNetTrainerV2) and of 3d_cascade_fullres (nnUNetTrainerV2CascadeFullRes),
each network built by the published trainer class itself (``initialize(training=False)``), its seg
outputs x20 (confident), the cascade's first-conv weights on the one-hot inputs x4, and the first seed
whose network predicts every label on >= 4 % of a training case (v1's own prediction; v1's seg outputs
have no bias to calibrate), saved with the trainer's ``save_checkpoint``. They are not trained: v1's parity
needs v1's answers for given weights, not good weights.
predict: ``nnUNet_predict`` for 3d_lowres, then for 3d_cascade_fullres with ``-l`` (those lowres labels).
"""
from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

PLANS = "nnUNetPlansv2.1"
BASE_FEATURES = 4
REFERENCE_VRAM = 700_000  # v1's Generic_UNet.use_this_for_batch_size_computation_3D is 520e6
SEG_GAIN, PREVIOUS_GAIN = 20.0, 4.0
MAX_SEEDS, MIN_FRACTION = 60, 0.04  # a seed whose network predicts each label on >= 4 % of a training case
STAGES = (("3d_lowres", "nnUNetTrainerV2"), ("3d_cascade_fullres", "nnUNetTrainerV2CascadeFullRes"))


def task_name(task_id: int) -> str:
    raw = Path(os.environ["nnUNet_raw_data_base"]) / "nnUNet_raw_data"
    return next(p.name for p in raw.iterdir() if p.name.startswith(f"Task{task_id}_"))


def plan(task_id: int) -> None:
    from nnunet.experiment_planning import nnUNet_plan_and_preprocess
    from nnunet.network_architecture.generic_UNet import Generic_UNet
    Generic_UNet.use_this_for_batch_size_computation_3D = REFERENCE_VRAM
    sys.argv = ["nnUNet_plan_and_preprocess", "-t", str(task_id), "-tl", "1", "-tf", "1", "-pl2d", "None"]
    nnUNet_plan_and_preprocess.main()
    plans_file = Path(os.environ["nnUNet_preprocessed"]) / task_name(task_id) / f"{PLANS}_plans_3D.pkl"
    with open(plans_file, "rb") as f:
        plans = pickle.load(f)  # our own file, just written by v1's planner
    if len(plans["plans_per_stage"]) != 2:
        raise SystemExit(f"v1 planned {len(plans['plans_per_stage'])} stage(s); lower REFERENCE_VRAM")
    plans["base_num_features"] = BASE_FEATURES
    with open(plans_file, "wb") as f:
        pickle.dump(plans, f)
    for stage, p in plans["plans_per_stage"].items():
        print("stage", stage, "patch", p["patch_size"], "spacing", p["current_spacing"], flush=True)


def _trainer(task: str, configuration: str, trainer_name: str):
    from nnunet.run.default_configuration import get_default_configuration
    plans_file, output_folder, dataset_directory, batch_dice, stage, trainer_class = \
        get_default_configuration(configuration, task, trainer_name, PLANS)
    trainer = trainer_class(plans_file, 0, output_folder=output_folder, dataset_directory=dataset_directory,
                            batch_dice=batch_dice, stage=stage, unpack_data=True, deterministic=False, fp16=False)
    trainer.initialize(False)
    return trainer


def _case_input(trainer, cascade: bool) -> np.ndarray:
    """A preprocessed training case of the trainer's stage (+ its labels one-hot, for the cascade's calibration)."""
    folder = Path(trainer.folder_with_preprocessed_data)
    case = np.load(sorted(folder.glob("*.npz"))[0])["data"]
    data, seg = case[:-1], case[-1]
    if cascade:
        data = np.concatenate([data, np.stack([(seg == c).astype(np.float32) for c in range(1, trainer.num_classes)])])
    return data.astype(np.float32)


def build(task_id: int) -> None:
    import torch
    torch.set_num_threads(1)
    task = task_name(task_id)
    for configuration, trainer_name in STAGES:
        trainer = _trainer(task, configuration, trainer_name)
        data = _case_input(trainer, configuration == "3d_cascade_fullres")
        for seed in range(MAX_SEEDS):  # v1's seg outputs have no bias to calibrate: pick a seed instead
            torch.manual_seed(seed)
            trainer.initialize_network()
            _make_confident(trainer, configuration)
            fractions = _label_fractions(trainer, data)
            print(configuration, "seed", seed, "label fractions", fractions, flush=True)
            if min(fractions[1:]) >= MIN_FRACTION and fractions[0] >= 0.3:
                break
        else:
            raise SystemExit(f"no seed below {MAX_SEEDS} gives every label in {configuration}")
        trainer.save_checkpoint(os.path.join(trainer.output_folder, "model_final_checkpoint.model"))
        shutil.copy(trainer.plans_file, os.path.join(trainer.output_folder_base, "plans.pkl"))  # as v1's training does
        print("saved", trainer.output_folder, "seed", seed, flush=True)


def _make_confident(trainer, configuration: str) -> None:
    import torch
    net = trainer.network
    with torch.no_grad():
        for layer in net.seg_outputs:
            layer.weight *= SEG_GAIN
        if configuration == "3d_cascade_fullres":  # the one-hot previous-stage inputs follow the image
            first = net.conv_blocks_context[0].blocks[0].conv
            first.weight[:, trainer.num_input_channels - (trainer.num_classes - 1):] *= PREVIOUS_GAIN


def _label_fractions(trainer, data: np.ndarray) -> list[float]:
    """The share of each label in v1's own prediction (TTA, sliding window) of a preprocessed case."""
    trainer.network.eval()
    seg, _ = trainer.predict_preprocessed_data_return_seg_and_softmax(
        data, do_mirroring=True, mirror_axes=trainer.data_aug_params["mirror_axes"], use_sliding_window=True,
        step_size=0.5, use_gaussian=True, all_in_gpu=False, mixed_precision=False, verbose=False)
    return [round(float((seg == c).mean()), 3) for c in range(trainer.num_classes)]


def predict(task_id: int, input_dir: str, output_dir: str) -> None:
    common = ["-t", str(task_id), "-p", PLANS, "-f", "0", "-z", "--num_threads_preprocessing", "1",
              "--num_threads_nifti_save", "1"]
    lowres = str(Path(output_dir) / "3d_lowres")
    subprocess.run(["nnUNet_predict", "-i", input_dir, "-o", lowres, "-m", "3d_lowres", "-tr", "nnUNetTrainerV2",
                    *common], check=True)
    subprocess.run(["nnUNet_predict", "-i", input_dir, "-o", str(Path(output_dir) / "3d_cascade_fullres"),
                    "-m", "3d_cascade_fullres", "-ctr", "nnUNetTrainerV2CascadeFullRes", "-l", lowres, *common],
                   check=True)


def main() -> None:
    step, task_id = sys.argv[1], int(sys.argv[2])
    if step == "plan":
        plan(task_id)
    elif step == "build":
        build(task_id)
    else:
        predict(task_id, sys.argv[3], sys.argv[4])


if __name__ == "__main__":
    main()
