"""Per-case preprocessing: transpose -> crop to non-zero -> normalize -> resample.

Returns the network input and a record of every step so the prediction can be put back
exactly onto the input grid (see ``inference/export.py``). Training cases pass their label
map too, which goes through the same transpose, crop and (label-aware) resampling.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import MedSegError
from ..memory import array_bytes, check_memory
from .cropping import BBox, crop_labels, crop_to_nonzero
from .normalization import normalize_channel
from .resampling import compute_new_shape, resample_data, resample_volume, separate_z_axis
from .segmentation import resample_segmentation


@dataclass
class PreprocessRecord:
    """What preprocessing did to one case (nnU-Net's 'properties'), in transposed axis order."""

    transpose_forward: list[int]
    shape_before_cropping: tuple[int, ...]
    bbox: BBox
    shape_after_cropping: tuple[int, ...]
    spacing: tuple[float, ...]          # original spacing, transposed
    target_spacing: tuple[float, ...]   # spacing the network sees (3 entries, also for 2d models)

    @property
    def transpose_backward(self) -> list[int]:
        return list(np.argsort(self.transpose_forward))


def target_spacing_for(config: dict, spacing: Sequence[float]) -> tuple[float, ...]:
    """The configuration's spacing; 2d configurations keep the case's own first-axis spacing."""
    target = list(config["spacing"])
    if len(target) < len(spacing):
        target = [spacing[0]] + target
    return tuple(float(s) for s in target)


def preprocess(array: np.ndarray, spacing: Sequence[float], plans: dict, config: dict,
               seg: np.ndarray | None = None) -> tuple[np.ndarray, PreprocessRecord, np.ndarray | None]:
    """Preprocess image data (c, z, y, x) with ``spacing`` (z, y, x) for ``config`` of ``plans``.

    Returns (network input, record, labels): labels are None unless ``seg`` (1, z, y, x) is given.
    """
    transpose = [int(a) for a in plans.get("transpose_forward", [0, 1, 2])]
    axes = [0, *[a + 1 for a in transpose]]
    view = array.transpose(axes)
    spacing_t = tuple(float(spacing[a]) for a in transpose)
    shape_before = tuple(view.shape[1:])
    data, mask, bbox = crop_to_nonzero(view)
    # a copy of the crop only: normalization works in place and must not touch the caller's image
    data = np.array(data, dtype=np.float32, order="C")
    if seg is not None:
        seg = crop_labels(seg.transpose(axes), bbox, mask)
        mask = seg[0] >= 0  # nnU-Net normalizes over labelled voxels too
    shape_cropped = tuple(data.shape[1:])
    target = target_spacing_for(config, spacing_t)
    new_shape = compute_new_shape(shape_cropped, spacing_t, target)
    check_resampled_memory(data.shape[0], shape_cropped, spacing_t, new_shape, target)
    kwargs = config.get("resampling_fn_data_kwargs", {})
    resample = dict(order=kwargs.get("order", 3), order_z=kwargs.get("order_z", 0),
                    force_separate_z=kwargs.get("force_separate_z"))
    if config.get("normalize_after_resampling"):  # nnU-Net v1 (models/v1_folder.py)
        if seg is not None:
            raise MedSegError("Preprocessing training cases for nnU-Net v1 plans is not supported.")
        data = resample_data(data, new_shape, spacing_t, target, **resample)
        mask = resample_mask(mask, new_shape, spacing_t, target, resample["force_separate_z"])
        data = normalize(data, mask, plans, config, zero_outside_mask=True)
    else:
        data = normalize(data, mask, plans, config)
        data = resample_data(data, new_shape, spacing_t, target, **resample)
    if seg is not None:
        kw = config.get("resampling_fn_seg_kwargs", {})
        seg = resample_segmentation(seg, new_shape, spacing_t, target, kw.get("order", 1), kw.get("order_z", 0),
                                    kw.get("force_separate_z"))
    record = PreprocessRecord(transpose, shape_before, bbox, shape_cropped, spacing_t, target)
    return data, record, seg


def normalize(data: np.ndarray, mask: np.ndarray, plans: dict, config: dict,
              zero_outside_mask: bool = False) -> np.ndarray:
    """Normalize each channel as the plans say. ``zero_outside_mask``: channels normalized within the
    mask are set to zero outside it (nnU-Net v1, whose resampled data need not be zero there)."""
    schemes = config["normalization_schemes"]
    if len(schemes) != data.shape[0]:
        raise MedSegError(f"The plans normalize {len(schemes)} channels but the image has {data.shape[0]}.")
    use_mask = config.get("use_mask_for_norm", [False] * len(schemes))
    stats = plans.get("foreground_intensity_properties_per_channel", {})
    for c, scheme in enumerate(schemes):
        data[c] = normalize_channel(data[c], scheme, bool(use_mask[c]), mask, stats.get(str(c)))
        if zero_outside_mask and use_mask[c]:
            data[c][~mask] = 0
    return data


def resample_mask(mask: np.ndarray, new_shape: Sequence[int], spacing: Sequence[float],
                  new_spacing: Sequence[float], force_separate_z: bool | None = None) -> np.ndarray:
    """The non-zero mask on the resampled grid, as v1 resamples its "-1 outside" segmentation: the
    inside indicator linearly (nearest along a separate z axis), inside where it reaches 0.5."""
    if tuple(mask.shape) == tuple(new_shape):
        return mask
    axis = separate_z_axis(spacing, new_spacing, force_separate_z)
    return resample_volume(mask.astype(np.float64), new_shape, 1, axis, 0) >= 0.5


def check_resampled_memory(channels: int, shape: Sequence[int], spacing: Sequence[float],
                           new_shape: Sequence[int], new_spacing: Sequence[float]) -> None:
    """Refuse up front a resampled image that cannot fit: float32 out plus two float64 working volumes."""
    if tuple(new_shape) == tuple(shape):
        return  # nothing is resampled
    need = array_bytes((channels, *new_shape), 4) + 2 * array_bytes(new_shape, 8)
    check_memory(need, f"Resampling the image from {tuple(shape)} voxels at {tuple(round(s, 4) for s in spacing)} mm "
                       f"to the model's {tuple(round(s, 4) for s in new_spacing)} mm ({tuple(new_shape)} voxels)",
                 "Check the voxel spacing in the image header (a wrong unit, e.g. 1500 instead of 1.5 mm, "
                 "multiplies the size), or crop the image to the region of interest.")
