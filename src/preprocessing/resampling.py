"""Resampling as nnU-Net does it.

Data: cubic B-spline (order 3), edge mode, pixel-centre aligned grids (skimage ``resize``
semantics: ``scipy.ndimage.zoom(grid_mode=True)`` then clipped to the input's range). When the
spacing is anisotropic (max/min > 3) the coarse axis is handled separately: in-plane
interpolation per slice, nearest neighbour (order 0) along the coarse axis.
Logits at export: the same with order 1, done with torch (same arithmetic, many times faster).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ANISOTROPY_THRESHOLD = 3.0


def compute_new_shape(shape: Sequence[int], spacing: Sequence[float], new_spacing: Sequence[float]) -> tuple[int, ...]:
    return tuple(int(round(s / n * d)) for s, n, d in zip(spacing, new_spacing, shape))


def _coarse_axis(spacing: Sequence[float] | np.ndarray) -> int | None:
    spacing = np.asarray(spacing, dtype=float)
    if spacing.max() / spacing.min() <= ANISOTROPY_THRESHOLD:
        return None
    axes = np.flatnonzero(spacing.max() / spacing == 1)
    return int(axes[0]) if len(axes) == 1 else None


def separate_z_axis(spacing: Sequence[float], new_spacing: Sequence[float],
                    force_separate_z: bool | None = None) -> int | None:
    """The axis to treat separately (order 0), or None; nnU-Net's rule, current spacing first."""
    if force_separate_z is False:
        return None
    if force_separate_z:
        return _coarse_axis_unconditional(spacing)
    axis = _coarse_axis(spacing)
    return axis if axis is not None else _coarse_axis(new_spacing)


def _coarse_axis_unconditional(spacing: Sequence[float] | np.ndarray) -> int | None:
    spacing = np.asarray(spacing, dtype=float)
    axes = np.flatnonzero(spacing.max() / spacing == 1)
    return int(axes[0]) if len(axes) == 1 else None


def _zoom(volume: np.ndarray, new_shape: Sequence[int], order: int) -> np.ndarray:
    from scipy.ndimage import zoom
    factors = [n / o for n, o in zip(new_shape, volume.shape)]
    return zoom(volume, factors, order=order, mode="nearest", grid_mode=True)


def _nearest_indices(old: int, new: int) -> np.ndarray:
    """Source index of each target voxel for order-0 pixel-centre aligned resampling."""
    scale = old / new
    source = scale * (np.arange(new) + 0.5) - 0.5
    return np.clip(np.floor(source + 0.5).astype(np.int64), 0, old - 1)


def resample_volume(volume: np.ndarray, new_shape: Sequence[int], order: int, axis: int | None,
                    order_z: int = 0) -> np.ndarray:
    """Resample one 3D (or 2D) volume, computed in float64 (float32 in, float32 out); result clipped to the
    input's range like skimage."""
    new_shape = tuple(int(s) for s in new_shape)
    if volume.shape == new_shape:
        return volume
    # float32 stays float32: scipy interpolates in float64 whatever it is given, so only the stored result is
    # rounded (and clipping commutes with that rounding): the same values, without a float64 copy of the image
    # (1.3 GB for a whole-body CT). A second zoom along the coarse axis reads the first's output: float64 then.
    second_zoom = axis is not None and order_z != 0 and new_shape[axis] != volume.shape[axis]
    if volume.dtype != np.float32 or second_zoom:
        volume = volume.astype(np.float64, copy=False)
    if axis is None:
        out = _zoom(volume, new_shape, order)
        return np.clip(out, volume.min(), volume.max(), out=out) if order > 0 else out
    # in-plane first (factor 1 along the coarse axis keeps its slices exactly), clipped per slice
    in_plane = list(new_shape)
    in_plane[axis] = volume.shape[axis]
    out = _zoom(volume, in_plane, order)
    if order > 0:
        other = tuple(a for a in range(volume.ndim) if a != axis)
        lo = volume.min(axis=other, keepdims=True)
        hi = volume.max(axis=other, keepdims=True)
        np.clip(out, lo, hi, out=out)
    if new_shape[axis] != volume.shape[axis]:
        if order_z != 0:
            out = _zoom(out, new_shape, order_z)
        else:
            out = np.take(out, _nearest_indices(volume.shape[axis], new_shape[axis]), axis=axis)
    return out


def resample_data(data: np.ndarray, new_shape: Sequence[int], spacing: Sequence[float],
                  new_spacing: Sequence[float], order: int = 3, order_z: int = 0,
                  force_separate_z: bool | None = None) -> np.ndarray:
    """Resample (c, ...) image data to ``new_shape``; float32 out."""
    axis = separate_z_axis(spacing, new_spacing, force_separate_z)
    if tuple(data.shape[1:]) == tuple(new_shape):
        return data.astype(np.float32, copy=False)
    out = np.empty((data.shape[0], *new_shape), dtype=np.float32)
    for c in range(data.shape[0]):
        out[c] = resample_volume(data[c], new_shape, order, axis, order_z)
    return out


def resample_logits(logits, new_shape: Sequence[int], spacing: Sequence[float], new_spacing: Sequence[float],
                    order: int = 1, order_z: int = 0, force_separate_z: bool | None = None):
    """Resample (c, ...) logits (torch tensor) back to the original grid. Linear (order 1) runs in torch."""
    import torch
    import torch.nn.functional as F

    new_shape = tuple(int(s) for s in new_shape)
    if tuple(logits.shape[1:]) == new_shape:
        return logits
    axis = separate_z_axis(spacing, new_spacing, force_separate_z)
    if order != 1 or (axis is not None and order_z not in (0, 1)):
        data = resample_data(logits.float().cpu().numpy(), new_shape, spacing, new_spacing, order, order_z,
                             force_separate_z)
        return torch.from_numpy(data)
    x = logits.float()
    ndim = x.ndim - 1
    if axis is None:
        mode = "trilinear" if ndim == 3 else "bilinear"
        return F.interpolate(x[None], size=new_shape, mode=mode, align_corners=False)[0]
    # in-plane linear per slice of the coarse axis, then order 0 (or 1) along it
    moved = x.movedim(axis + 1, 1)  # (c, n_coarse, a, b)
    c, n = moved.shape[:2]
    plane = [s for i, s in enumerate(new_shape) if i != axis]
    flat = moved.reshape(c * n, 1, *moved.shape[2:])
    flat = F.interpolate(flat, size=plane, mode="bilinear", align_corners=False)
    moved = flat.reshape(c, n, *plane)
    if new_shape[axis] != n:
        if order_z == 0:
            index = torch.from_numpy(_nearest_indices(n, new_shape[axis])).to(moved.device)
            moved = moved.index_select(1, index)
        else:
            moved = F.interpolate(moved.movedim(1, -1).reshape(1, -1, n), size=new_shape[axis], mode="linear",
                                  align_corners=False).reshape(c, *plane, new_shape[axis]).movedim(-1, 1)
    return moved.movedim(1, axis + 1).contiguous()
