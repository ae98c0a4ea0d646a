"""Sanity and memory bounds of the network a plan describes, checked before anything is built.

A plans.json is untrusted input: ``features_per_stage: [200000]`` asks for petabytes of
weights and ``patch_size: [4096, 4096, 4096]`` for terabytes of activations. Both are refused
with the size they would need, before torch tries to allocate them.
"""
from __future__ import annotations

import math

from ..errors import MedSegError
from ..memory import check_memory
from .generic_features import generic_unet_features

_MAX_STAGES = 16


def _positive_ints(value, what: str, length: int | None = None) -> list:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * (length or 1)
    flat = [v for item in values for v in (item if isinstance(item, (list, tuple)) else [item])]
    if not flat or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in flat):
        raise MedSegError(f"The plans' {what} must be positive whole numbers; got {value!r}.")
    if length is not None and len(values) != length:
        raise MedSegError(f"The plans' {what} has {len(values)} entries for {length} stages.")
    return values


def check_arch_kwargs(architecture: object) -> tuple[list, list]:
    """The structure of ``architecture`` (stages, features, kernels, strides); returns (features, kernels)."""
    if not isinstance(architecture, dict) or not isinstance(architecture.get("arch_kwargs"), dict):
        raise MedSegError("The plans' architecture has no 'arch_kwargs' mapping; plans.json is damaged.")
    kw = architecture["arch_kwargs"]
    if str(architecture.get("network_class_name", "")).endswith("Generic_UNet"):
        return _generic_unet_shape(kw)
    n = kw.get("n_stages")
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= _MAX_STAGES:
        raise MedSegError(f"The plans' n_stages must be a whole number from 1 to {_MAX_STAGES}; got {n!r}.")
    features = _positive_ints(kw.get("features_per_stage"), "features_per_stage", n)
    kernels = _positive_ints(kw.get("kernel_sizes"), "kernel_sizes", n)
    _positive_ints(kw.get("strides"), "strides", n)
    return features, kernels


def check_architecture(config: dict, input_channels: int, num_outputs: int) -> None:
    """Refuse a configuration whose network is malformed or cannot fit in this machine's memory."""
    features, kernels = check_arch_kwargs(config.get("architecture"))
    patch = _positive_ints(config.get("patch_size"), "patch_size")
    check_memory(_weight_bytes(features, kernels, input_channels, num_outputs),
                 f"The network's weights (features per stage {features})",
                 "The plans' features_per_stage look damaged; use the model's original plans.json.")
    # a lower bound at inference: one patch in and out, and the first stage's feature maps twice
    # (the skip connection and the current map) at full resolution
    voxels = math.prod(patch)
    activations = voxels * 4 * (input_channels + num_outputs + 2 * features[0]) + voxels * 8  # + Gaussian weights
    check_memory(activations, f"One patch of {' x '.join(map(str, patch))} voxels through the network",
                 "The plans' patch_size looks damaged; use the model's original plans.json.")


def _weight_bytes(features: list, kernels: list, input_channels: int, num_outputs: int) -> int:
    """Bytes of float32 weights, two convolutions per stage in the encoder and the decoder."""
    total, previous = 0, input_channels
    for width, kernel in zip(features, kernels):
        size = math.prod(kernel) if isinstance(kernel, (list, tuple)) else kernel ** 3
        total += (previous * width + width * width) * size * 2  # encoder + decoder, roughly
        previous = width
    return (total + features[0] * num_outputs) * 4


def _generic_unet_shape(kw: dict) -> tuple[list, list]:
    """nnU-Net v1's Generic_UNet states kernels per stage and a base width (e.g. a model trained with a v1
    model's plans carried over)."""
    kernels = _positive_ints(kw.get("conv_kernel_sizes"), "conv_kernel_sizes")
    if not 1 <= len(kernels) <= _MAX_STAGES or not all(isinstance(k, (list, tuple)) and len(k) in (2, 3)
                                                      for k in kernels):
        raise MedSegError(f"The plans' conv_kernel_sizes must list 1 to {_MAX_STAGES} stages of 2 or 3 sizes.")
    _positive_ints(kw.get("pool_op_kernel_sizes"), "pool_op_kernel_sizes", len(kernels) - 1)
    base = _positive_ints(kw.get("base_num_features"), "base_num_features", 1)[0]
    return generic_unet_features(base, len(kernels), len(kernels[0])), kernels
