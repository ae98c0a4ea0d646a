"""Crop to the bounding box of non-zero voxels (any channel), holes filled, as nnU-Net does."""
from __future__ import annotations

import numpy as np

BBox = list[list[int]]  # half-open [start, end) per axis


def nonzero_mask(data: np.ndarray) -> np.ndarray:
    """True where any channel of ``data`` (c, ...) is non-zero, with enclosed holes filled."""
    from scipy.ndimage import binary_fill_holes
    return binary_fill_holes(np.any(data != 0, axis=0))


def bounding_box(mask: np.ndarray) -> BBox:
    """Half-open bounding box of ``mask``; the whole array when the mask is empty."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        box.append([int(hits[0]), int(hits[-1]) + 1] if hits.size else [0, mask.shape[axis]])
    return box


def crop_to_nonzero(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, BBox]:
    """Return (cropped data, cropped non-zero mask, bbox)."""
    mask = nonzero_mask(data)
    box = bounding_box(mask)
    region = tuple(slice(a, b) for a, b in box)
    return data[(slice(None),) + region], mask[region], box


def crop_labels(seg: np.ndarray, box: BBox, mask: np.ndarray) -> np.ndarray:
    """Crop a (1, ...) label map to ``box``; background outside the non-zero ``mask`` becomes -1
    (nnU-Net's marker, used for masked normalization and never sampled as background)."""
    region = (slice(None),) + tuple(slice(a, b) for a, b in box)
    seg = np.array(seg[region])
    seg[0][(seg[0] == 0) & ~mask] = -1
    return seg


def uncrop(cropped: np.ndarray, box: BBox, full_shape, fill=0) -> np.ndarray:
    """Put ``cropped`` (..., *box extent) back into an array of ``full_shape`` (spatial) filled with ``fill``."""
    lead = cropped.shape[: cropped.ndim - len(box)]
    out = np.full((*lead, *full_shape), fill, dtype=cropped.dtype)
    out[(Ellipsis,) + tuple(slice(a, b) for a, b in box)] = cropped
    return out


def crop_case(data: np.ndarray, seg: np.ndarray | None):
    """Crop image and label to the image's non-zero box; label outside the non-zero mask becomes -1."""
    cropped, mask, box = crop_to_nonzero(data)
    return cropped, None if seg is None else crop_labels(seg, box, mask), box, mask
