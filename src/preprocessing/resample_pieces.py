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


class Scratch:
    """Working tensors reused from box to box: page faults on fresh ones took most of the time (measured)."""

    def __init__(self) -> None:
        self._held: dict[str, torch.Tensor] = {}

    def get(self, key: str, shape: Sequence[int]) -> torch.Tensor:
        import torch
        held = self._held.get(key)
        if held is None or tuple(held.shape) != tuple(shape):
            held = self._held[key] = torch.empty(tuple(shape), dtype=torch.float32)
        return held


def _pick(values: torch.Tensor, dim: int, index: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``index_select(values, dim, index)`` into ``out`` as rows of a matrix: torch's index_select along an
    inner dimension takes a generic path 10-20x slower than copying whole rows (measured)."""
    import torch
    outer, n = int(np.prod(values.shape[:dim])), values.shape[dim]
    inner = int(np.prod(values.shape[dim + 1:]))
    rows = (torch.arange(outer)[:, None] * n + index[None]).reshape(-1)
    torch.index_select(values.reshape(outer * n, inner), 0, rows, out=out.view(outer * len(index), inner))
    return out


def _along(values: torch.Tensor, dim: int, amap: AxisMap, start: int, stop: int, offset: int,
           scratch: Scratch) -> torch.Tensor:
    """Resample ``values`` along ``dim`` to target indices [start, stop); the source begins at ``offset``."""
    import torch
    if amap.identity and values.shape[dim] == stop - start:
        return values
    shape = list(values.shape)
    shape[dim] = stop - start
    picked = _pick(values, dim, torch.from_numpy(amap.low[start:stop] - offset), scratch.get(f"{dim} low", shape))
    if not amap.weight[start:stop].any():
        return picked
    high = _pick(values, dim, torch.from_numpy(amap.high[start:stop] - offset), scratch.get(f"{dim} high", shape))
    weight_shape = [1] * values.ndim
    weight_shape[dim] = stop - start
    return picked.lerp_(high, torch.from_numpy(amap.weight[start:stop]).view(weight_shape))


def resample_box(logits: torch.Tensor, maps: Sequence[AxisMap], box: Sequence[tuple[int, int]],
                 scratch: Scratch | None = None) -> torch.Tensor:
    """Float32 values (k, *box extent) of the target grid inside ``box`` ([start, stop) per spatial axis).

    Reads only the source slab the box needs, converts just that to float32 (the accumulator is
    float16), then resamples axis by axis in a fixed order. The channels are kept innermost while it
    works (the result is a channel-first view of that): picking indices along a spatial axis then copies
    blocks of channels, where along the innermost axis it would gather single values (6x slower).
    The result lives in ``scratch`` (overwritten by the next box).
    """
    scratch = scratch or Scratch()
    ranges = [m.source_range(a, b) for m, (a, b) in zip(maps, box)]
    region = logits[(slice(None),) + tuple(slice(lo, hi) for lo, hi in ranges)]
    moved = region.permute(*range(1, region.ndim), 0)
    slab = scratch.get("slab", moved.shape).copy_(moved)
    for axis, (amap, (start, stop), (lo, _)) in enumerate(zip(maps, box, ranges)):
        slab = _along(slab, axis, amap, start, stop, lo, scratch)
    return slab.permute(slab.ndim - 1, *range(slab.ndim - 1))
