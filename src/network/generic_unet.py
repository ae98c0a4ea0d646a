"""nnU-Net v1's Generic_UNet, as its published trainers build it, with v1's state-dict keys.

The network is the same U-Net as v2's PlainConvUNet up to four details, which ``build_generic_unet``
passes to :class:`~.unet.UNet`: features double per stage up to 320 (3D) / 480 (2D); the transposed
convolutions and the segmentation heads have no bias; and decoder stage ``u`` (lowest resolution
first) convolves with the kernel of encoder stage ``-(u + 1)`` (v2 uses the skip's own stage), which
matters for anisotropic plans. The bottleneck and each decoder stage are two v1 ``StackedConvLayers``
(``n - 1`` convs, then one). :class:`GenericUNet` holds the one UNet (its fast inference path is
used) and registers the same layers under v1's names, so a v1 ``state_dict`` loads strictly:
``conv_blocks_context.{d}.blocks.{i}.conv|instnorm``, ``conv_blocks_context.{last}.{0,1}.blocks...``,
``conv_blocks_localization.{u}.{0,1}.blocks...``, ``tu.{u}``, ``seg_outputs.{u}`` (all deep-supervision
heads exist in the weights; only the last is used at inference).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from torch import nn

from .generic_features import generic_unet_features
from .unet import ConvNormAct, ConvStack, LayerOps, UNet


class _V1Conv(nn.Module):
    """v1's ConvDropoutNormNonlin names for one of the UNet's conv blocks (the same modules)."""

    def __init__(self, block: ConvNormAct) -> None:
        super().__init__()
        self.conv = block.conv
        self.instnorm = block.norm  # v1 calls the norm "instnorm" also when it is a batch norm
        self.lrelu = block.nonlin


class _V1Stack(nn.Module):
    """v1's StackedConvLayers: ``blocks`` of conv blocks."""

    def __init__(self, blocks: Sequence[ConvNormAct]) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[_V1Conv(b) for b in blocks])


def _split_stack(stack: ConvStack) -> nn.Sequential:
    """The bottleneck / a decoder stage: v1 builds it as (n - 1 convs, 1 conv)."""
    convs = stack.blocks()
    return nn.Sequential(_V1Stack(convs[:-1]), _V1Stack(convs[-1:]))


class GenericUNet(nn.Module):
    """A :class:`UNet` whose state dict uses v1's Generic_UNet keys; forward is the UNet's."""

    unet: UNet  # set with object.__setattr__ in __init__ (not a child module)

    def __init__(self, unet: UNet) -> None:
        super().__init__()
        # not registered as a child: its layers are registered below under v1's names instead
        object.__setattr__(self, "unet", unet)
        # each encoder stage is Sequential(ConvStack)
        stages = [cast(ConvStack, cast(nn.Sequential, stage)[0]) for stage in unet.encoder.stages]
        self.conv_blocks_context = nn.ModuleList([_V1Stack(s.blocks()) for s in stages[:-1]] +
                                                 [_split_stack(stages[-1])])
        self.conv_blocks_localization = nn.ModuleList([_split_stack(cast(ConvStack, s)) for s in unet.decoder.stages])
        self.tu = nn.ModuleList(list(unet.decoder.transpconvs))
        self.seg_outputs = nn.ModuleList(list(unet.decoder.seg_layers))

    def train(self, mode: bool = True) -> GenericUNet:
        super().train(mode)
        self.unet.train(mode)  # the UNet's own containers, which are not children here
        return self

    def forward(self, x):
        return self.unet(x)


def build_generic_unet(kw: dict, input_channels: int, num_outputs: int, ops: LayerOps,
                       deep_supervision: bool = False) -> GenericUNet:
    """``kw``: the arch_kwargs the v1 adapter writes (models/v1_folder.py): base_num_features,
    conv_kernel_sizes (one per stage), pool_op_kernel_sizes (one per stage but the first), conv_per_stage."""
    kernels = [[int(k) for k in ks] for ks in kw["conv_kernel_sizes"]]
    pools = [[int(p) for p in ps] for ps in kw["pool_op_kernel_sizes"]]
    n, dim = len(kernels), len(kernels[0])
    per_stage = max(int(kw.get("conv_per_stage", 2)), 1)
    # StackedConvLayers always makes at least one conv, so the bottleneck and decoder stages have
    # max(n - 1, 1) + 1 convs; the other encoder stages n
    split = max(per_stage - 1, 1) + 1
    unet = UNet(ops, input_channels, num_outputs, features=generic_unet_features(kw["base_num_features"], n, dim),
                kernels=kernels, strides=[[1] * dim] + pools, blocks_per_stage=[per_stage] * (n - 1) + [split],
                convs_per_stage_decoder=[split] * (n - 1), bias=True, residual=False,
                stage_kernels=[kernels[-(u + 1)] for u in range(n - 1)], transpconv_bias=False, head_bias=False,
                deep_supervision=deep_supervision)  # training (transfer from a v1 model) uses every head
    return GenericUNet(unet)
