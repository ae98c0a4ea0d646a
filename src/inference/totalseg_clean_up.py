"""TotalSegmentator's clean-up of some structures on the model grid, before the labels go back (its nnunet.py
and postprocessing.py, 2.18): for the ``body`` task, only the largest connected component of the body trunk
is kept, and the extremities' components of at most 50 000 mm3 are removed; ``vertebrae_pp``'s touching
vertebrae are relabelled and grown (inference/vertebrae_relabel.py).

Components are face-connected (scipy's default structure); the voxel volume is the product of the model
grid's voxel sizes as its NIfTI header stores them (float32), as TotalSegmentator computes it. Among
components of equal size the first in scan order of the (x, y, z) array is the largest, as there.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from ..errors import MedSegError
from ..models.conventions import CleanUp
from .vertebrae_relabel import relabel_vertebrae


def check_structures(steps: Sequence[CleanUp], values: Mapping[str, int], model: str) -> None:
    """Refuses a manifest whose clean-up names a structure the model does not have."""
    unknown = sorted({name for step in steps for name in step.structures if name not in values})
    if unknown:
        raise MedSegError(f"The manifest's clean-up of {model} names structures it does not have: "
                          f"{', '.join(unknown)}.")


def clean_up(labels_xyz: np.ndarray, steps: Sequence[CleanUp], values: Mapping[str, int],
             zooms: Sequence[np.floating]) -> np.ndarray:
    """The labels (x, y, z, on the model grid with voxel sizes ``zooms``) after every step, in order."""
    labels = np.ascontiguousarray(labels_xyz).copy()
    voxel_mm3 = np.prod(zooms)  # float32 from the header's zooms, as TotalSegmentator's threshold
    for step in steps:
        if step.kind == "relabel_vertebrae":
            labels = relabel_vertebrae(labels, [values[n] for n in step.structures], zooms, step.min_mm3,
                                       step.dilation_mm)
            continue
        for name in step.structures:
            mask = labels == values[name]
            if step.kind == "largest_component":
                kept = _largest_component(mask)
            else:
                kept = _components_larger_than(mask, step.min_mm3 / voxel_mm3)
            labels[mask & ~kept] = 0
    return labels


def _largest_component(mask: np.ndarray) -> np.ndarray:
    components, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = np.bincount(components.ravel())[1:]
    return components == int(np.argmax(sizes)) + 1  # the first of equal sizes


def _components_larger_than(mask: np.ndarray, voxels: float) -> np.ndarray:
    components, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = np.bincount(components.ravel())
    keep = sizes > voxels
    keep[0] = False
    return keep[components]
