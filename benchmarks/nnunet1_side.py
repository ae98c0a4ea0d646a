"""nnunet 1.7.1's side of predict_v1_vs_nnunet1.py; runs in the v1 venv (.venv-nnunet1), imports no MedSeg.

    python nnunet1_side.py make TEMPLATE_PLANS_PKL MODEL_DIR PATCH STAGES
    python nnunet1_side.py predict MODEL_DIR OUTPUT CASE_0000.nii.gz ... [--tta]

``make`` writes a v1 model folder as v1's trainer writes it: the BraTS 2020 trainer
(nnUNetTrainerV2BraTSRegions_DA4_BN) builds its network (He-initialised random weights, seed 0) from
plans shaped like the published Task082 plans (4 channels, 1 mm, patch PATCH^3, 32 base features,
STAGES - 1 poolings of 2), and ``save_checkpoint`` writes fold_0/model_final_checkpoint.model(.pkl).
``predict`` is v1's ``predict_cases`` (what nnUNet_predict runs), one preprocessing and one export worker.
"""
from __future__ import annotations

import pickle
import shutil
import sys
from pathlib import Path

TRAINER = "nnUNetTrainerV2BraTSRegions_DA4_BN"


def make(template: str, model_dir: str, patch: int, stages: int) -> None:
    import numpy as np
    import torch
    from nnunet.training.network_training.competitions_with_custom_Trainers.BraTS2020.\
        nnUNetTrainerV2BraTSRegions_moreDA import nnUNetTrainerV2BraTSRegions_DA4_BN
    with open(template, "rb") as f:
        plans = pickle.load(f)  # the fixture's own plans, written by v1's planner
    stage = plans["plans_per_stage"][0]
    stage.update(patch_size=np.array([patch] * 3), current_spacing=np.array([1.0, 1.0, 1.0]),
                 original_spacing=np.array([1.0, 1.0, 1.0]), num_pool_per_axis=[stages - 1] * 3,
                 pool_op_kernel_sizes=[[2, 2, 2]] * (stages - 1), conv_kernel_sizes=[[3, 3, 3]] * stages,
                 do_dummy_2D_data_aug=False, batch_size=5)
    plans["base_num_features"] = 32
    folder = Path(model_dir) / "3d_fullres" / "Task982_BraTSBench" / f"{TRAINER}__nnUNetPlansv2.1"
    (folder / "fold_0").mkdir(parents=True)
    with open(folder / "plans.pkl", "wb") as f:
        pickle.dump(plans, f)
    torch.manual_seed(0)
    trainer = nnUNetTrainerV2BraTSRegions_DA4_BN(str(folder / "plans.pkl"), 0, output_folder=str(folder),
                                                 dataset_directory=str(folder), stage=0)
    trainer.process_plans(plans)
    trainer.initialize_network()
    trainer.initialize_optimizer_and_scheduler()
    trainer.save_checkpoint(str(folder / "fold_0" / "model_final_checkpoint.model"))
    shutil.copy(folder / "plans.pkl", Path(model_dir) / "plans_used.pkl")


def predict(model_dir: str, output: str, files: list[str], tta: bool) -> None:
    from nnunet.inference.predict import predict_cases
    folder = next(Path(model_dir).glob("3d_fullres/*/*__*"))
    predict_cases(str(folder), [files], [output], folds=(0,), save_npz=False, num_threads_preprocessing=1,
                  num_threads_nifti_save=1, do_tta=tta, mixed_precision=False, overwrite_existing=True,
                  all_in_gpu=False, step_size=0.5, checkpoint_name="model_final_checkpoint",
                  disable_postprocessing=True)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        args = [a for a in sys.argv[4:] if a != "--tta"]
        predict(sys.argv[2], sys.argv[3], args, "--tta" in sys.argv)
