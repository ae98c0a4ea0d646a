"""U-Net topology from spacing and patch size: how often each axis is downsampled, kernel sizes.

nnU-Net's rule: keep halving the axes whose spacing is within a factor 2 of the finest one, as
long as the feature map edge stays >= ``min_edge`` (``3 * min_edge`` if only one axis is left);
an axis gets 3-wide kernels once its spacing is within a factor 2 of the finest. The patch is then
padded up to a multiple of the total downsampling per axis.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Topology:
    pools_per_axis: list[int]
    strides: list[list[int]]       # one per stage, the first is all ones
    kernel_sizes: list[list[int]]  # one per stage
    patch_size: tuple[int, ...]
    divisor: np.ndarray            # the patch must be a multiple of this per axis

    @property
    def num_stages(self) -> int:
        return len(self.strides)


def pad_to_multiple(shape: Sequence[float] | np.ndarray, divisor: Sequence[int] | np.ndarray) -> tuple[int, ...]:
    """Round each entry up to a multiple of ``divisor`` (an exact multiple stays)."""
    out = []
    for size, div in zip(shape, divisor):
        padded = size + div - size % div
        if size % div == 0:
            padded -= div
        out.append(int(padded))
    return tuple(out)


def compute_topology(spacing: Sequence[float] | np.ndarray, patch_size: Sequence[float] | np.ndarray,
                     min_edge: int = 4) -> Topology:
    dim = len(spacing)
    spacing_now = [float(s) for s in spacing]
    size_now = list(patch_size)
    pools = [0] * dim
    kernel = [1] * dim
    strides = [[1] * dim]
    kernels = []
    while True:
        axes = [a for a in range(dim) if size_now[a] >= 2 * min_edge]
        if not axes:
            break
        finest = min(spacing_now[a] for a in axes)
        axes = [a for a in axes if spacing_now[a] / finest < 2]
        # a single remaining axis needs room for more than one further halving
        if len(axes) == 1 and size_now[axes[0]] < 3 * min_edge:
            break
        if not axes:
            break
        for a in range(dim):
            if kernel[a] != 3 and spacing_now[a] / min(spacing_now) < 2:
                kernel[a] = 3
        stride = [1] * dim
        for a in axes:
            stride[a] = 2
            pools[a] += 1
            spacing_now[a] *= 2
            size_now[a] = np.ceil(size_now[a] / 2)
        strides.append(stride)
        kernels.append(list(kernel))
    kernels.append([3] * dim)  # the bottleneck always uses full 3-wide kernels
    divisor = 2 ** np.array(pools)
    return Topology(pools, strides, kernels, pad_to_multiple(patch_size, divisor), divisor)
