"""Linear (and separate-z nearest) resampling of logits, one box of the target grid at a time.

The export resamples network logits back onto the image grid. For a whole-body CT and a model with
many outputs that is far too big to hold at once (118 channels x 157 M voxels in float32: 74 GB), so
it works box by box. Every target voxel here depends only on per-axis index/weight tables and on the
source values, never on where a box starts: pieced and whole resampling give the same bits.

The arithmetic is nnU-Net's order-1 export (pixel-centre aligned, edge values repeated; order 0
along a separately treated coarse axis), done one axis at a time: linear interpolation is
separable, so this equals the trilinear result up to float rounding.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .resampling import _nearest_indices, separate_z_axis

if TYPE_CHECKING:  # torch is imported where it is used: `medseg --help` must not load it
    import torch


@dataclass(frozen=True)
class AxisMap:
    """Where each target index along one axis takes its value: ``(1 - w) * src[low] + w * src[high]``."""

    low: np.ndarray     # int64, one per target index
    high: np.ndarray    # int64
    weight: np.ndarray  # float32 share of ``high``; all zero for nearest-neighbour or identity
    identity: bool = False

    @property
    def size(self) -> int:
        return len(self.low)

    def source_range(self, start: int, stop: int) -> tuple[int, int]:
        """The source indices [first, last + 1) that target indices [start, stop) read."""
        return int(self.low[start:stop].min()), int(self.high[start:stop].max()) + 1


def linear_map(source: int, target: int) -> AxisMap:
    """Order 1 with pixel-centre aligned grids, as torch's ``interpolate(align_corners=False)``."""
    if source == target:
        index = np.arange(target, dtype=np.int64)
        return AxisMap(index, index, np.zeros(target, np.float32), identity=True)
    position = np.maximum((np.arange(target) + 0.5) * (source / target) - 0.5, 0.0)
    low = np.minimum(np.floor(position).astype(np.int64), source - 1)
    high = np.minimum(low + 1, source - 1)
    return AxisMap(low, high, (position - low).astype(np.float32))


def nearest_map(source: int, target: int) -> AxisMap:
    index = _nearest_indices(source, target)
    return AxisMap(index, index, np.zeros(target, np.float32), identity=source == target)


def axis_maps(source_shape: Sequence[int], target_shape: Sequence[int], spacing: Sequence[float],
              new_spacing: Sequence[float], order_z: int = 0, force_separate_z: bool | None = None,
              ) -> list[AxisMap]:
    """One map per spatial axis; the coarse axis (nnU-Net's rule) is nearest when ``order_z`` is 0."""
    axis = separate_z_axis(spacing, new_spacing, force_separate_z)
    return [nearest_map(s, t) if a == axis and order_z == 0 else linear_map(s, t)
            for a, (s, t) in enumerate(zip(source_shape, target_shape))]


def _along(values: torch.Tensor, dim: int, amap: AxisMap, start: int, stop: int, offset: int) -> torch.Tensor:
    """Resample ``values`` along ``dim`` to target indices [start, stop); the source begins at ``offset``."""
    import torch
    if amap.identity and values.shape[dim] == stop - start:
        return values
    low = torch.from_numpy(amap.low[start:stop] - offset)
    picked = values.index_select(dim, low)
    if not amap.weight[start:stop].any():
        return picked
    high = values.index_select(dim, torch.from_numpy(amap.high[start:stop] - offset))
    shape = [1] * values.ndim
    shape[dim] = stop - start
    return picked.lerp_(high, torch.from_numpy(amap.weight[start:stop]).view(shape))


def resample_box(logits: torch.Tensor, maps: Sequence[AxisMap], box: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Float32 values (k, *box extent) of the target grid inside ``box`` ([start, stop) per spatial axis).

    Reads only the source slab the box needs, converts just that to float32 (the accumulator is
    float16), then resamples axis by axis in a fixed order.
    """
    ranges = [m.source_range(a, b) for m, (a, b) in zip(maps, box)]
    slab = logits[(slice(None),) + tuple(slice(lo, hi) for lo, hi in ranges)].float()
    for axis, (amap, (start, stop), (lo, _)) in enumerate(zip(maps, box, ranges)):
        slab = _along(slab, axis + 1, amap, start, stop, lo)
    return slab
