"""What each nnU-Net v1 trainer class changes at inference.

v1's predictor rebuilds a model's trainer from its class name, and the trainer decides the network
(norm layer, convs per stage), the outputs (softmax labels or the BraTS regions with sigmoids) and
whether test-time mirroring is allowed. MedSeg runs no trainer code, so this table states those
facts for every published trainer (read from nnunet 1.7.1's training/network_training/). Training-only
differences (augmentation, loss, epochs, batch dice) are irrelevant here. A lab's subclass named
``<known trainer>_<suffix>`` (as people name them) is taken to behave as its parent.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import MedSegError

# get_brats_regions() of v1's region-based BraTS trainers, in output order, and the value each writes
BRATS_REGIONS = {"whole tumour": (1, 2, 3), "tumour core": (2, 3), "enhancing tumour": (3,)}
BRATS_REGIONS_CLASS_ORDER = (1, 2, 3)


@dataclass(frozen=True)
class TrainerBehaviour:
    """Inference-relevant behaviour of a v1 trainer class."""

    norm: str = "instance"              # "instance" (InstanceNorm, affine) or "batch" (BatchNorm, running stats)
    brats_regions: bool = False         # outputs are BRATS_REGIONS with sigmoids (else softmax labels)
    mirroring: bool = True              # test-time mirroring allowed (v1 refuses it otherwise)
    conv_per_stage: int | None = None   # overrides the plans' conv_per_stage
    supported: bool = True              # False: a network MedSeg does not build (the reason is in `note`)
    note: str = ""


_V2 = TrainerBehaviour()
_BN = TrainerBehaviour(norm="batch")
_NO_MIRROR = TrainerBehaviour(mirroring=False)
_BRATS = TrainerBehaviour(brats_regions=True)
_BRATS_BN = TrainerBehaviour(norm="batch", brats_regions=True)
_RESENC = TrainerBehaviour(supported=False, note="its residual encoder U-Net (FabiansUNet) is not built by MedSeg")

TRAINERS: dict[str, TrainerBehaviour] = {
    # the standard trainers: Generic_UNet, instance norm, softmax, mirroring on all axes
    "nnUNetTrainer": _V2, "nnUNetTrainerV2": _V2, "nnUNetTrainerV2_fp32": _V2, "nnUNetTrainerV2_DP": _V2,
    "nnUNetTrainerV2_DDP": _V2, "nnUNetTrainerV2_DA2": _V2, "nnUNetTrainerV2_DA3": _V2, "nnUNetTrainerV2_DA5": _V2,
    "nnUNetTrainerV2_insaneDA": _V2, "nnUNetTrainerV2_independentScalePerAxis": _V2,
    "nnUNetTrainerV2_2epochs": _V2, "nnUNetTrainerV2_fullEvals": _V2,
    "nnUNetTrainerV2_3ConvPerStage": TrainerBehaviour(conv_per_stage=3),
    # batch norm (eval mode: the stored running statistics)
    "nnUNetTrainerV2_BN": _BN, "nnUNetTrainerV2_DA3_BN": _BN,
    # trained without mirroring: v1 refuses test-time mirroring for these
    "nnUNetTrainerV2_noMirroring": _NO_MIRROR, "nnUNetTrainerV2_noDataAugmentation": _NO_MIRROR,
    "nnUNetTrainerNoDA": _NO_MIRROR,
    # BraTS 2020 (competitions_with_custom_Trainers/BraTS2020): regions WT/TC/ET with sigmoids
    "nnUNetTrainerV2BraTSRegions": _BRATS, "nnUNetTrainerV2BraTSRegions_Dice": _BRATS,
    "nnUNetTrainerV2BraTSRegions_DDP": _BRATS, "nnUNetTrainerV2BraTSRegions_DA3": _BRATS,
    "nnUNetTrainerV2BraTSRegions_DA3_BD": _BRATS,
    "nnUNetTrainerV2BraTSRegions_BN": _BRATS_BN, "nnUNetTrainerV2BraTSRegions_DA3_BN": _BRATS_BN,
    "nnUNetTrainerV2BraTSRegions_DA3_BN_BD": _BRATS_BN, "nnUNetTrainerV2BraTSRegions_DA4_BN": _BRATS_BN,
    "nnUNetTrainerV2BraTSRegions_DA4_BN_BD": _BRATS_BN,
    # a cascade's second stage: Generic_UNet as nnUNetTrainerV2's, with the lowres labels one-hot as extra
    # inputs (models/v1_folder.py marks the configuration; inference/cascade.py feeds them)
    "nnUNetTrainerCascadeFullRes": _V2, "nnUNetTrainerV2CascadeFullRes": _V2,
    # known but not runnable here
    "nnUNetTrainerV2_ResencUNet": _RESENC, "nnUNetTrainerV2_ResencUNet_DA3": _RESENC,
    "nnUNetTrainerV2_ResencUNet_DA3_BN": _RESENC,
}


def trainer_behaviour(name: str) -> TrainerBehaviour:
    """The behaviour of trainer ``name``: a known one, or ``<known>_<suffix>`` (longest known prefix wins)."""
    known = TRAINERS.get(name) or _parent_behaviour(name)
    if known is None:
        raise MedSegError(f"The model was trained with nnU-Net v1 trainer {name!r}, whose inference behaviour "
                          "MedSeg does not know (its network, outputs or mirroring may differ). Known trainers: "
                          f"{', '.join(sorted(TRAINERS))}; a subclass named <known trainer>_<suffix> is run as its "
                          "parent.")
    if not known.supported:
        raise MedSegError(f"nnU-Net v1 trainer {name!r} cannot be run by MedSeg: {known.note}.")
    return known


def _parent_behaviour(name: str) -> TrainerBehaviour | None:
    parents = [k for k in TRAINERS if name.startswith(k + "_")]
    return TRAINERS[max(parents, key=len)] if parents else None
