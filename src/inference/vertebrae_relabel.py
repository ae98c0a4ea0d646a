"""TotalSegmentator's clean-up of its ``vertebrae_pp`` task (vertebral bodies, C1-L5), on the model grid.

Facts from TotalSegmentator 2.18 (postprocessing.py), which this reproduces on its own code:
  - vertebral bodies of different vertebrae should never touch; when two face-neighbours carry different
    vertebra labels, the labels are redone: every face-connected component of the foreground of at least
    ``min_mm3`` is one vertebra, counted from the lowest component upwards starting at the highest label
    present (L5 when it is there), or from the top down starting at C1 when C1 is present and L5 is not
    (a head scan); components beyond the last label, and smaller ones, are cleared;
  - then (touching or not) each vertebra is grown by ``dilation_mm`` into background only (it was trained
    on labels eroded by that much), lower label values first, with an ellipsoid of that radius in mm whose
    grid runs from -r to r + 1 in steps of one voxel per axis (numpy's ogrid), inside the vertebra's box
    grown by ceil(r) voxels.
Heights are the third (z, canonical superior) axis of the (x, y, z) array.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def relabel_vertebrae(labels_xyz: np.ndarray, values_top_down: Sequence[int], zooms: Sequence[np.floating],
                      min_mm3: float, dilation_mm: float) -> np.ndarray:
    """The labels after the clean-up; ``values_top_down`` are the vertebrae's values from C1 to L5."""
    labels = np.ascontiguousarray(labels_xyz).astype(np.uint8)
    if _labels_touch(labels):
        labels = _count_components(labels, values_top_down, np.prod(zooms), min_mm3)
        if labels is None:
            return np.zeros(labels_xyz.shape, dtype=np.uint8)
    return _grow(labels, sorted(values_top_down), zooms, dilation_mm)


def _labels_touch(labels: np.ndarray) -> bool:
    for axis in range(labels.ndim):
        a, b = np.moveaxis(labels, axis, 0)[1:], np.moveaxis(labels, axis, 0)[:-1]
        if np.any((a > 0) & (b > 0) & (a != b)):
            return True
    return False


def _count_components(labels: np.ndarray, values_top_down: Sequence[int], voxel_mm3, min_mm3: float):
    """Each large component one vertebra, counted as described above; None when nothing is left."""
    components, _ = ndimage.label(labels > 0)
    sizes = np.bincount(components.ravel())
    kept = np.flatnonzero(sizes * voxel_mm3 >= min_mm3)
    kept = kept[kept != 0]
    if kept.size == 0:
        return None
    keep = np.zeros(sizes.shape, dtype=bool)
    keep[kept] = True
    inside = keep[components]
    present = sorted(set(np.unique(labels[inside]).tolist()) & set(values_top_down))
    if not present:
        return None
    top, bottom, highest = values_top_down[0], values_top_down[-1], max(values_top_down)
    heights = [c[2] for c in ndimage.center_of_mass(inside, components, kept)]
    from_top = bottom not in present and top in present
    order = sorted(range(len(kept)), key=lambda i: heights[i], reverse=from_top)  # stable: ties keep id order
    assign = range(top, highest + 1) if from_top else range(max(present), min(values_top_down) - 1, -1)
    out = np.zeros(labels.shape, dtype=np.uint8)
    for index, value in zip(order, assign):
        out[components == kept[index]] = value
    return out


def _grow(labels: np.ndarray, values: Sequence[int], zooms: Sequence[np.floating], dilation_mm: float) -> np.ndarray:
    if dilation_mm <= 0:
        return labels
    radii = [dilation_mm / z for z in zooms]
    grids = np.ogrid[-radii[0]:radii[0] + 1, -radii[1]:radii[1] + 1, -radii[2]:radii[2] + 1]
    ball = sum((g * g) / (r * r) for g, r in zip(grids, radii)) <= 1
    reach = np.ceil(radii).astype(int)
    out = labels.copy()
    for value in values:
        where = np.nonzero(labels == value)
        if where[0].size == 0:
            continue
        box = tuple(slice(max(int(w.min()) - r, 0), min(int(w.max()) + r + 1, n))
                    for w, r, n in zip(where, reach, labels.shape))
        grown = ndimage.binary_dilation(labels[box] == value, structure=ball)
        target = out[box]
        target[(target == 0) & grown] = value
    return out
