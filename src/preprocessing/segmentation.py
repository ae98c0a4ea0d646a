"""Resampling label maps as nnU-Net does: interpolate each label's indicator, keep the best-scoring label.

Each label's 0/1 indicator is resampled linearly (order 1; in-plane only plus nearest neighbour
along a coarse axis when the spacing is anisotropic, like the image data) and every voxel takes
the label with the highest score. Exact ties (a sample point half-way between two labels) go to
the nearest-neighbour label when it is one of the tied labels, otherwise to the smallest label;
so no label value appears that was not there, and no voxel is left unassigned.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .resampling import resample_volume, separate_z_axis


def resample_label_volume(labels: np.ndarray, new_shape: Sequence[int], axis: int | None, order: int = 1,
                          order_z: int = 0) -> np.ndarray:
    """Resample one (z, y, x) label volume to ``new_shape``; same dtype out."""
    new_shape = tuple(int(s) for s in new_shape)
    if labels.shape == new_shape:
        return labels.copy()
    values = np.unique(labels)
    if values.size == 1:
        return np.full(new_shape, values[0], dtype=labels.dtype)
    nearest = resample_volume(labels.astype(np.float64), new_shape, 0, axis, 0)
    best = resample_volume((labels == values[0]).astype(np.float64), new_shape, order, axis, order_z)
    winner = np.full(new_shape, values[0], dtype=labels.dtype)
    nearest_score = np.where(nearest == values[0], best, -1.0)
    for value in values[1:]:
        score = resample_volume((labels == value).astype(np.float64), new_shape, order, axis, order_z)
        better = score > best
        winner[better] = value
        np.maximum(best, score, out=best)
        is_nearest = nearest == value
        nearest_score[is_nearest] = score[is_nearest]
    tie_to_nearest = (nearest_score == best) & (best > 0)
    winner[tie_to_nearest] = nearest[tie_to_nearest].astype(labels.dtype)
    return winner


def resample_segmentation(seg: np.ndarray, new_shape: Sequence[int], spacing: Sequence[float],
                          new_spacing: Sequence[float], order: int = 1, order_z: int = 0,
                          force_separate_z: bool | None = None) -> np.ndarray:
    """Resample a (c, z, y, x) label array (usually c = 1) from ``spacing`` to ``new_shape``."""
    axis = separate_z_axis(spacing, new_spacing, force_separate_z)
    out = np.empty((seg.shape[0], *[int(s) for s in new_shape]), dtype=seg.dtype)
    for c in range(seg.shape[0]):
        out[c] = resample_label_volume(seg[c], new_shape, axis, order, order_z)
    return out
