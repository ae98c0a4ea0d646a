"""TotalSegmentator's split of a large image into three overlapping slabs along z, predicted one after another.

TotalSegmentator 2.18 (its nnunet.py) splits the image its models see (cropped, canonical RAS, resampled)
when it has more than 512 x 512 x 900 voxels and more than 200 slices along z, for its multi-part tasks
only (``total``, ``total_mr``, ...); ``--force_split`` splits any task's image. With ``third`` = slices // 3
and a margin of 20 slices, the three slabs are the slices [0, third + 20), [third - 19, 2 third + 20) and
[2 third - 19, end); each is predicted on its own (every part model on it), and the labels go back as
slices [0, third) of the first, [third, 2 third) of the second and [2 third, end) of the third, read from
each slab's own slices. Fewer than 58 slices cannot be split so (TotalSegmentator fails there too).

Only one slab's logits exist at a time, which is what bounds the memory of a whole-body CT.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MedSegError
from ..images import Image

SPLIT_VOXELS = 512 * 512 * 900    # split automatically above this many voxels ...
SPLIT_SLICES = 200                # ... and above this many slices along z
MARGIN = 20                       # slices of context each slab has beyond the slices it gives back
FEWEST_SLICES = 58                # the fewest for which the three slabs' slices fit inside the image


@dataclass(frozen=True)
class Slab:
    """One of the three: the image's slices ``source`` are predicted; the slab's own slices ``keep`` of the
    result become the image's slices ``target``."""

    source: slice
    keep: slice
    target: slice


def needs_split(shape_xyz: tuple[int, ...], multi_part: bool, force: bool) -> bool:
    """Whether TotalSegmentator splits an image of this shape (x, y, z) on its model grid."""
    if force:
        return True
    return multi_part and int(np.prod(shape_xyz, dtype=np.int64)) > SPLIT_VOXELS and shape_xyz[2] > SPLIT_SLICES


def check_slices(slices: int, model: str) -> None:
    """Refuses an image too thin along z for the three slabs (before any slab is predicted)."""
    if slices < FEWEST_SLICES:
        raise MedSegError(f"--force-split needs at least {FEWEST_SLICES} slices along z on {model}'s grid (its "
                          f"spacing, canonical orientation); this image has {slices}. Leave out --force-split: "
                          "splitting is for large images (TotalSegmentator cannot split this one either).")


def slabs(slices: int) -> list[Slab]:
    """The three slabs of an image with ``slices`` slices along z (at least FEWEST_SLICES)."""
    third = slices // 3
    first = Slab(slice(0, third + MARGIN), slice(0, third), slice(0, third))
    # the later slabs start MARGIN - 1 slices before the slices they give back (TotalSegmentator's offsets)
    second = Slab(slice(third + 1 - MARGIN, 2 * third + MARGIN), slice(MARGIN - 1, MARGIN - 1 + third),
                  slice(third, 2 * third))
    last = Slab(slice(2 * third + 1 - MARGIN, slices), slice(MARGIN - 1, MARGIN - 1 + slices - 2 * third),
                slice(2 * third, slices))
    return [first, second, last]


def slab_image(grid: Image, source: slice) -> Image:
    """The slices ``source`` of ``grid`` (z first), its affine moved to the slab's first slice."""
    affine = grid.affine.copy()
    affine[:3, 3] += affine[:3, 2] * source.start
    return Image(np.ascontiguousarray(grid.array[:, source]), grid.spacing, affine, channel_names=grid.channel_names)
