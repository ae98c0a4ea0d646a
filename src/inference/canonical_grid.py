"""The grid TotalSegmentator's models see: crop, closest canonical (RAS) orientation, one spacing; and back.

Each step is what TotalSegmentator 2.18 does to an image (its nnunet.py, resampling.py, cropping.py,
alignment.py), so that its models get the same voxels from us as from it:
  - the image is copied with a header made from its affine (voxel sizes = the affine's column lengths);
  - a crop keeps the box around a mask, grown by a margin in mm (whole voxels, rounded down), as int32;
  - nibabel's closest canonical orientation (axes permuted and flipped, never resampled);
  - linear resampling to the target spacing (scipy zoom, edges repeated), truncated to int32, the
    affine's columns scaled; an image already at that spacing is left alone;
  - labels go back by nearest neighbour to the exact canonical shape, then to the stored orientation,
    then into the uncropped grid.
Arrays here are nibabel's (x, y, z); the rest of MedSeg's are (z, y, x).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform
from scipy import ndimage

Box = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


@dataclass
class CanonicalRecord:
    """What :func:`to_model_grid` did, to put labels back on the input's grid."""

    original_shape: tuple[int, int, int]       # (x, y, z) of the input
    original_affine: np.ndarray
    box: Box | None                            # the crop, in the input's voxels
    canonical_shape: tuple[int, int, int]      # before resampling
    canonical_affine: np.ndarray
    resampled: bool


def as_nifti(volume_xyz: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """A float64 image whose header comes from the affine alone (TotalSegmentator copies its input so)."""
    return nib.Nifti1Image(np.asarray(volume_xyz, dtype=np.float64), np.asarray(affine, dtype=np.float64))


def crop_box(mask_xyz: np.ndarray, zooms: Sequence[float], margin_mm: Sequence[float]) -> Box:
    """The box around the mask's voxels, grown by ``margin_mm`` (whole voxels), inside the image."""
    margin = (np.asarray(margin_mm, dtype=np.float64) / np.asarray(zooms, dtype=np.float64)).astype(int)
    where = np.nonzero(mask_xyz > 0)
    box = []
    for axis in range(3):
        low = int(where[axis].min()) - int(margin[axis])
        high = int(where[axis].max()) + 1 + int(margin[axis])
        box.append((max(0, low), min(mask_xyz.shape[axis], high)))
    return (box[0], box[1], box[2])


def crop(image: nib.Nifti1Image, box: Box) -> nib.Nifti1Image:
    data = image.get_fdata()[box[0][0]:box[0][1], box[1][0]:box[1][1], box[2][0]:box[2][1]]
    affine = image.affine.copy()
    affine[:3, 3] = (image.affine @ np.array([box[0][0], box[1][0], box[2][0], 1.0]))[:3]
    return nib.Nifti1Image(data.astype(np.int32), affine)


def resample_to_spacing(image: nib.Nifti1Image, spacing: Sequence[float]) -> nib.Nifti1Image:
    """Linear resampling to ``spacing`` (x, y, z) mm, as int32; unchanged when already at it."""
    zooms = np.array(image.header.get_zooms()[:3])
    target = np.asarray(spacing, dtype=np.float64)
    if np.array_equal(zooms, target):
        return image
    factors = zooms / target
    affine = image.affine.copy()
    affine[:3, :3] = affine[:3, :3] / factors[None, :]
    data = ndimage.zoom(image.get_fdata(), factors, order=1, mode="nearest")
    return nib.Nifti1Image(data.astype(np.int32), affine)


def to_model_grid(volume_xyz: np.ndarray, affine: np.ndarray, spacing: Sequence[float] | None,
                  box: Box | None = None) -> tuple[nib.Nifti1Image, CanonicalRecord]:
    """The image as the model sees it, and the record to come back."""
    image = as_nifti(volume_xyz, affine)
    original_shape, original_affine = tuple(image.shape[:3]), image.affine.copy()
    if box is not None:
        image = crop(image, box)
    canonical = nib.as_closest_canonical(image)
    model_image = resample_to_spacing(canonical, spacing) if spacing is not None else canonical
    record = CanonicalRecord(original_shape, original_affine, box, tuple(canonical.shape[:3]),  # type: ignore[arg-type]
                             canonical.affine.copy(), model_image is not canonical)
    return model_image, record


def model_grid_shape(shape_xyz: Sequence[int], affine: np.ndarray, spacing: Sequence[float] | None) -> tuple[int, ...]:
    """The shape (x, y, z) :func:`to_model_grid` gives an uncropped image, found without reading its voxels."""
    empty = np.broadcast_to(np.float64(0), tuple(int(n) for n in shape_xyz))  # no memory: the header is what counts
    canonical = nib.as_closest_canonical(nib.Nifti1Image(empty, np.asarray(affine, dtype=np.float64)))
    zooms = np.array(canonical.header.get_zooms()[:3])
    if spacing is None or np.array_equal(zooms, np.asarray(spacing, dtype=np.float64)):
        return tuple(canonical.shape[:3])
    factors = zooms / np.asarray(spacing, dtype=np.float64)
    return tuple(int(round(n * f)) for n, f in zip(canonical.shape[:3], factors))  # as scipy's zoom sizes its output


def labels_to_input_grid(labels_xyz: np.ndarray, record: CanonicalRecord) -> np.ndarray:
    """Labels on the model grid (x, y, z) -> the input's grid (x, y, z), uint8 as TotalSegmentator writes."""
    labels = np.asarray(labels_xyz)
    if record.resampled and labels.shape != record.canonical_shape:
        factors = np.array(record.canonical_shape, dtype=np.float64) / np.array(labels.shape, dtype=np.float64)
        labels = ndimage.zoom(labels.astype(np.float64), factors, order=0, mode="nearest")
    labels = labels.astype(np.uint8 if labels.max(initial=0) < 256 else np.uint16)
    back = ornt_transform(axcodes2ornt("RAS"), io_orientation(record.original_affine))
    labels = nib.orientations.apply_orientation(labels, back)
    if record.box is None:
        return np.ascontiguousarray(labels)
    full = np.zeros(record.original_shape, dtype=labels.dtype)
    (x0, x1), (y0, y1), (z0, z1) = record.box
    full[x0:x1, y0:y1, z0:z1] = labels
    return full
