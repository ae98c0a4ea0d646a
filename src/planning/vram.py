"""GPU memory proxy used by the planner: the number of values in all conv output feature maps.

nnU-Net compares this count (for one sample, no deep supervision) with a reference value that is
known to fit the memory target. It is a pure function of the architecture's shapes, so it is
computed here without building the network.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _voxels(size: Sequence[int]) -> int:
    return int(np.prod([int(s) for s in size], dtype=np.int64))


def _downsample(size: Sequence[int], stride: Sequence[int]) -> list[int]:
    return [int(s) // int(t) for s, t in zip(size, stride)]


def encoder_feature_map_size(patch: Sequence[int], features: Sequence[int], strides: Sequence[Sequence[int]],
                             blocks: Sequence[int], residual: bool) -> int:
    total = 0
    size = [int(p) for p in patch]
    in_channels = features[0]
    if residual:
        total += features[0] * _voxels(size)  # the stem: one conv at full resolution
    for channels, stride, n in zip(features, strides, blocks):
        after = _downsample(size, stride)
        if residual:
            # each basic block has two convs; the first also a 1x1 projection when shape or width changes
            total += 2 * n * channels * _voxels(after)
            if in_channels != channels or after != size:
                total += channels * _voxels(after)
        else:
            total += n * channels * _voxels(after)
        size, in_channels = after, channels
    return total


def decoder_feature_map_size(patch: Sequence[int], features: Sequence[int], strides: Sequence[Sequence[int]],
                             convs: Sequence[int], num_classes: int) -> int:
    skips = []
    size = [int(p) for p in patch]
    for stride in strides[:-1]:
        size = _downsample(size, stride)
        skips.append(size)
    total = 0
    num_stages = len(features) - 1
    for s in range(num_stages):
        skip, channels = skips[-(s + 1)], features[-(s + 2)]
        total += convs[s] * channels * _voxels(skip)  # conv blocks
        total += channels * _voxels(skip)             # transposed conv
        if s == num_stages - 1:
            total += num_classes * _voxels(skip)      # segmentation head (no deep supervision)
    return total


def estimate_feature_map_size(patch: Sequence[int], features: Sequence[int], strides: Sequence[Sequence[int]],
                              encoder_blocks: Sequence[int], decoder_convs: Sequence[int], num_classes: int,
                              residual: bool) -> int:
    """Values in all conv outputs of a PlainConvUNet (``residual=False``) or ResidualEncoderUNet."""
    return (encoder_feature_map_size(patch, features, strides, encoder_blocks, residual)
            + decoder_feature_map_size(patch, features, strides, decoder_convs, num_classes))
