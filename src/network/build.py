"""Build the network a plan describes, from an allow-list of layer names (no arbitrary imports)."""
from __future__ import annotations

from typing import Any

from ..errors import MedSegError
from .bounds import check_arch_kwargs
from .generic_unet import build_generic_unet
from .unet import LayerOps, UNet

_PLAIN = ("PlainConvUNet",)
_RESIDUAL = ("ResidualEncoderUNet",)
_GENERIC = ("Generic_UNet",)  # nnU-Net v1 (models/v1_folder.py describes it)


def _layer_types() -> dict[str, Any]:
    from torch import nn
    return {
        "Conv2d": nn.Conv2d, "Conv3d": nn.Conv3d,
        "InstanceNorm2d": nn.InstanceNorm2d, "InstanceNorm3d": nn.InstanceNorm3d,
        "BatchNorm2d": nn.BatchNorm2d, "BatchNorm3d": nn.BatchNorm3d,
        "GroupNorm": nn.GroupNorm,
        "Dropout": nn.Dropout, "Dropout2d": nn.Dropout2d, "Dropout3d": nn.Dropout3d,
        "LeakyReLU": nn.LeakyReLU, "ReLU": nn.ReLU, "GELU": nn.GELU, "PReLU": nn.PReLU,
    }


def _resolve(name: str | None):
    if name is None:
        return None
    short = str(name).rsplit(".", 1)[-1]
    try:
        return _layer_types()[short]
    except KeyError:
        raise MedSegError(f"The plans use layer type {name!r}, which MedSeg does not support.") from None


def build_network(architecture: dict, input_channels: int, num_outputs: int, deep_supervision: bool = False):
    """Build from ``plans["configurations"][cfg]["architecture"]`` (network_class_name + arch_kwargs)."""

    class_name = str(architecture.get("network_class_name", "")).rsplit(".", 1)[-1]
    if class_name not in _PLAIN + _RESIDUAL + _GENERIC:
        raise MedSegError(f"Network type {architecture.get('network_class_name')!r} is not supported "
                          "(supported: PlainConvUNet, ResidualEncoderUNet, nnU-Net v1's Generic_UNet).")
    kw = architecture.get("arch_kwargs")
    if not isinstance(kw, dict):
        raise MedSegError("The plans' architecture has no 'arch_kwargs' mapping; plans.json is damaged.")
    conv = _resolve(kw.get("conv_op"))
    if conv is None:
        raise MedSegError("The plans' architecture names no conv_op; plans.json is damaged.")
    dim = 3 if conv.__name__.endswith("3d") else 2
    ops = LayerOps(dim, _resolve(kw.get("norm_op")), kw.get("norm_op_kwargs"), _resolve(kw.get("dropout_op")),
                   kw.get("dropout_op_kwargs"), _resolve(kw.get("nonlin")), kw.get("nonlin_kwargs"),
                   bool(kw.get("nonlin_first", False)))
    if class_name in _GENERIC:
        return build_generic_unet(kw, input_channels, num_outputs, ops, deep_supervision)
    check_arch_kwargs(architecture)
    n = int(kw["n_stages"])
    residual = class_name in _RESIDUAL
    if residual and kw.get("block", "BasicBlockD").rsplit(".", 1)[-1] != "BasicBlockD":
        raise MedSegError(f"Residual block type {kw.get('block')!r} is not supported (only BasicBlockD).")
    blocks = kw["n_blocks_per_stage"] if residual else kw["n_conv_per_stage"]
    return UNet(ops, input_channels, num_outputs,
                features=_per_stage(kw["features_per_stage"], n),
                kernels=[_per_axis(k, dim) for k in _per_stage(kw["kernel_sizes"], n)],
                strides=[_per_axis(s, dim) for s in _per_stage(kw["strides"], n)],
                blocks_per_stage=_per_stage(blocks, n),
                convs_per_stage_decoder=_per_stage(kw["n_conv_per_stage_decoder"], n - 1),
                bias=bool(kw.get("conv_bias", False)), residual=residual, deep_supervision=deep_supervision)


def _per_stage(value, n: int) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


def _per_axis(value, dim: int) -> list[int]:
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)] * dim
