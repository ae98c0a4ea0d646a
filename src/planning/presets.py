"""Planner presets: nnU-Net's default planner and the residual-encoder (ResEnc) M / L / XL presets."""
from __future__ import annotations

from dataclasses import dataclass

PLAIN_UNET = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
RESENC_UNET = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"


@dataclass(frozen=True)
class PlannerPreset:
    """Numbers that steer the planner.

    ``reference_3d``/``reference_2d`` are feature-map counts known to fit ``reference_gb`` of GPU
    memory at batch size 2 (3D) / 12 (2D); the patch shrinks until the estimate fits.
    """

    key: str
    plans_name: str
    planner_name: str            # written as experiment_planner_used (nnU-Net's class name)
    network_class: str
    encoder_blocks: tuple[int, ...]
    decoder_convs: tuple[int, ...]
    reference_3d: float
    reference_2d: float
    reference_gb: float
    gpu_gb: float
    max_dataset_covered: float   # a batch may hold at most this fraction of the dataset's voxels
    # The default planner compares estimate * 2 / reference batch size (batch >= 2); ResEnc compares the raw estimate.
    per_sample_check: bool
    shares_default_data: bool    # ResEnc 2d/3d_fullres reuse the default plans' preprocessed data

    @property
    def residual(self) -> bool:
        return self.network_class == RESENC_UNET

    def data_identifier(self, configuration: str) -> str:
        if self.shares_default_data and configuration in ("2d", "3d_fullres"):
            return f"nnUNetPlans_{configuration}"
        return f"{self.plans_name}_{configuration}"


_RESENC_BLOCKS = (1, 3, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6)
_RESENC_DECODER = (1,) * 12

PRESETS = {
    "default": PlannerPreset("default", "nnUNetPlans", "ExperimentPlanner", PLAIN_UNET, (2,) * 14, (2,) * 13,
                             560e6, 85e6, 8, 8, 0.05, True, False),
    "resenc_m": PlannerPreset("resenc_m", "nnUNetResEncUNetMPlans", "nnUNetPlannerResEncM", RESENC_UNET,
                              _RESENC_BLOCKS, _RESENC_DECODER, 680e6, 135e6, 8, 8, 1.0, False, True),
    "resenc_l": PlannerPreset("resenc_l", "nnUNetResEncUNetLPlans", "nnUNetPlannerResEncL", RESENC_UNET,
                              _RESENC_BLOCKS, _RESENC_DECODER, 2100e6, 380e6, 24, 24, 1.0, False, True),
    "resenc_xl": PlannerPreset("resenc_xl", "nnUNetResEncUNetXLPlans", "nnUNetPlannerResEncXL", RESENC_UNET,
                               _RESENC_BLOCKS, _RESENC_DECODER, 3600e6, 560e6, 40, 40, 1.0, False, True),
}
