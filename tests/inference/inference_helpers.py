"""Tiny real models for engine tests: networks built by nnU-Net's own code from plans, then saved.

Weights are random (seeded) but non-trivial; parity with trained models is tested separately
against the committed fixtures in tests/data/nnunet/.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

ARCH_3D = {
    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "arch_kwargs": {
        "n_stages": 3, "features_per_stage": [8, 16, 32], "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
        "n_conv_per_stage": [2, 2, 2], "n_conv_per_stage_decoder": [2, 2], "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True}},
    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
}


def _config(patch, spacing, arch):
    return {
        "data_identifier": "tiny", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": patch, "median_image_size_in_voxels": [20, 40, 40], "spacing": spacing,
        "normalization_schemes": ["ZScoreNormalization", "ZScoreNormalization"], "use_mask_for_norm": [True, True],
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
        "architecture": arch, "batch_dice": False,
    }


def make_model(root: Path, labels: dict, regions_class_order=None, folds=(0,), seed=0) -> Path:
    """Write an nnU-Net v2 model folder whose network nnU-Net itself built from the plans."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    stats = {"max": 1, "mean": 0, "median": 0, "min": 0, "percentile_00_5": 0, "percentile_99_5": 1, "std": 1}
    plans = {"dataset_name": "Dataset999_Tiny", "plans_name": "nnUNetPlans", "image_reader_writer": "SimpleITKIO",
             "original_median_spacing_after_transp": [2.0, 1.0, 1.0], "original_median_shape_after_transp": [20, 40, 40],
             "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2], "label_manager": "LabelManager",
             "experiment_planner_used": "test", "foreground_intensity_properties_per_channel": {"0": stats, "1": stats},
             "configurations": {"3d_fullres": _config([16, 32, 32], [2.0, 1.0, 1.0], copy.deepcopy(ARCH_3D))}}
    dataset = {"channel_names": {"0": "T1", "1": "T2"}, "labels": labels, "numTraining": 1, "file_ending": ".nii.gz"}
    if regions_class_order:
        dataset["regions_class_order"] = regions_class_order
    folder = root / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    pm = PlansManager(plans)
    cm = pm.get_configuration("3d_fullres")
    heads = pm.get_label_manager(dataset).num_segmentation_heads
    for fold in folds:
        torch.manual_seed(seed + int(fold) if str(fold).isdigit() else seed)
        net = get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                     cm.network_arch_init_kwargs_req_import, 2, heads, deep_supervision=False)
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p) * 0.05)
            net.decoder.seg_layers[-1].weight.mul_(4)
        (folder / f"fold_{fold}").mkdir(parents=True)
        torch.save({"network_weights": net.state_dict(), "init_args": {"configuration": "3d_fullres"},
                    "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (0, 1, 2),
                    "logging": {"mean_fg_dice": [np.float64(0.1)]}},
                   folder / f"fold_{fold}" / "checkpoint_final.pth")
    (folder / "plans.json").write_text(json.dumps(plans))
    (folder / "dataset.json").write_text(json.dumps(dataset))
    return folder


def write_case(folder: Path, name: str = "case", shape=(9, 50, 44), channels: int = 2, seed: int = 1,
               affine=None) -> list[Path]:
    """A head-like 2-channel case with a zero border (z, y, x), anisotropic 4 x 0.9 x 1.1 mm by default."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    cz, cy, cx = (s / 2 for s in shape)
    inside = ((z - cz) / (0.5 * shape[0])) ** 2 + ((y - cy) / (0.36 * shape[1])) ** 2 + \
        ((x - cx) / (0.34 * shape[2])) ** 2 < 1
    core = ((y - cy) ** 2 + (x - cx) ** 2) < (0.13 * shape[1]) ** 2
    affine = np.array([[0, -0.9, 0, 10], [1.1, 0, 0, -20], [0, 0, 4.0, 5], [0, 0, 0, 1]]) if affine is None else affine
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for c in range(channels):
        arr = (rng.normal(100 + 20 * c, 10, size=shape) * inside + 30 * inside * core).astype(np.float32)
        path = folder / f"{name}_{c:04d}.nii.gz"
        nib.save(nib.Nifti1Image(arr.transpose(2, 1, 0), affine), str(path))
        paths.append(path)
    return paths


