"""Intensity normalization schemes named in nnU-Net plans (per channel)."""
from __future__ import annotations

import numpy as np

from ..errors import MedSegError

_EPS = 1e-8


def zscore(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Zero mean, unit variance; inside ``mask`` only when given (outside stays as is: zero)."""
    image = image.astype(np.float32, copy=False)
    if mask is not None:
        values = image[mask]
        mean, std = values.mean(), values.std()
        image[mask] = (values - mean) / max(std, _EPS)
        return image
    mean, std = image.mean(), image.std()
    image -= mean
    image /= max(std, _EPS)
    return image


def ct(image: np.ndarray, stats: dict) -> np.ndarray:
    """Clip to the dataset's foreground 0.5-99.5 percentiles, then standardize with its mean/std."""
    image = image.astype(np.float32, copy=False)
    np.clip(image, stats["percentile_00_5"], stats["percentile_99_5"], out=image)
    image -= stats["mean"]
    image /= max(stats["std"], _EPS)
    return image


def ct2(image: np.ndarray, stats: dict) -> np.ndarray:
    """nnU-Net v1's "CT2": clip to the dataset's 0.5-99.5 percentiles, then standardize with this image's
    own mean/std of the voxels strictly inside those bounds."""
    image = image.astype(np.float32, copy=False)
    lower, upper = stats["percentile_00_5"], stats["percentile_99_5"]
    inside = (image > lower) & (image < upper)
    np.clip(image, lower, upper, out=image)
    values = image[inside]
    image -= values.mean()
    image /= max(values.std(), _EPS)
    return image


def rescale_to_01(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.float32, copy=False)
    image -= image.min()
    image /= max(image.max(), _EPS)
    return image


def rgb_to_01(image: np.ndarray) -> np.ndarray:
    if image.min() < 0 or image.max() > 255:
        raise MedSegError("A channel normalized as RGB has values outside 0-255.")
    return image.astype(np.float32, copy=False) / 255.0


def normalize_channel(image: np.ndarray, scheme: str, use_mask: bool, mask: np.ndarray,
                      stats: dict | None) -> np.ndarray:
    """Apply the plan's scheme (``ZScoreNormalization``, ``CTNormalization``, ...) to one channel."""
    if scheme == "ZScoreNormalization":
        return zscore(image, mask if use_mask else None)
    if scheme == "CTNormalization":
        if not stats:
            raise MedSegError("CT normalization needs the dataset's intensity statistics, missing from the plans.")
        return ct(image, stats)
    if scheme == "CT2Normalization":
        if not stats:
            raise MedSegError("CT2 normalization needs the dataset's intensity statistics, missing from the plans.")
        return ct2(image, stats)
    if scheme == "NoNormalization":
        return image.astype(np.float32, copy=False)
    if scheme == "RescaleTo01Normalization":
        return rescale_to_01(image)
    if scheme == "RGBTo01Normalization":
        return rgb_to_01(image)
    raise MedSegError(f"Unknown normalization scheme {scheme!r} in the plans.")
