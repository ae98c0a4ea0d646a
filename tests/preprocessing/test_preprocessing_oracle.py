"""Preprocessing steps agree with the real nnU-Net's functions on the same arrays."""
import numpy as np
import pytest
from nnunetv2.preprocessing.cropping.cropping import crop_to_nonzero as nn_crop
from nnunetv2.preprocessing.normalization.default_normalization_schemes import (
    CTNormalization, RescaleTo01Normalization, ZScoreNormalization)
from nnunetv2.preprocessing.resampling.default_resampling import resample_data_or_seg_to_shape

from chimerax.medseg.preprocessing.cropping import crop_to_nonzero, uncrop
from chimerax.medseg.preprocessing.normalization import normalize_channel
from chimerax.medseg.preprocessing.resampling import compute_new_shape, resample_data


def _head(shape=(20, 40, 36), seed=0):
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    inside = ((z - 10) / 8) ** 2 + ((y - 18) / 14) ** 2 + ((x - 20) / 12) ** 2 < 1
    data = rng.normal(100, 20, size=(2, *shape)).astype(np.float32) * inside
    data[0, 10, 18, 20] = 0  # a hole inside the head must not change the crop
    return data


def test_crop_matches_nnunet():
    data = _head()
    ours, mask, box = crop_to_nonzero(data)
    theirs, seg, their_box = nn_crop(data.copy())
    assert box == [list(map(int, b)) for b in their_box]
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(mask, seg[0] == 0)
    np.testing.assert_array_equal(uncrop(ours, box, data.shape[1:]), data)


def test_empty_image_keeps_the_whole_grid():
    data = np.zeros((1, 4, 5, 6), np.float32)
    cropped, _, box = crop_to_nonzero(data)
    assert box == [[0, 4], [0, 5], [0, 6]] and cropped.shape == data.shape


@pytest.mark.parametrize("use_mask", [False, True])
def test_zscore_matches_nnunet(use_mask):
    cropped, mask, _ = crop_to_nonzero(_head())
    seg = np.where(mask, 0, -1)
    theirs = ZScoreNormalization(use_mask_for_norm=use_mask, intensityproperties={}).run(cropped[0].copy(), seg)
    ours = normalize_channel(cropped[0].copy(), "ZScoreNormalization", use_mask, mask, None)
    np.testing.assert_array_equal(ours, theirs)


def test_ct_and_rescale_match_nnunet():
    image = _head()[0] * 20 - 1000
    stats = {"mean": 40.0, "std": 300.0, "percentile_00_5": -900.0, "percentile_99_5": 1500.0}
    np.testing.assert_array_equal(normalize_channel(image.copy(), "CTNormalization", False, None, stats),
                                  CTNormalization(intensityproperties=stats).run(image.copy()))
    np.testing.assert_array_equal(normalize_channel(image.copy(), "RescaleTo01Normalization", False, None, None),
                                  RescaleTo01Normalization(intensityproperties={}).run(image.copy()))


@pytest.mark.parametrize("spacing,new_spacing", [
    ((1.0, 1.0, 1.0), (1.3, 0.8, 1.1)),   # isotropic, order 3 everywhere
    ((4.0, 1.0, 1.0), (2.0, 0.9, 0.9)),   # anisotropic input: separate z
    ((1.0, 1.0, 1.0), (3.5, 1.0, 1.0)),   # anisotropic target: separate z
])
def test_data_resampling_matches_nnunet(spacing, new_spacing):
    data = _head((12, 30, 27))
    shape = compute_new_shape(data.shape[1:], spacing, new_spacing)
    theirs = resample_data_or_seg_to_shape(data, shape, spacing, new_spacing, is_seg=False, order=3, order_z=0,
                                           force_separate_z=None)
    ours = resample_data(data, shape, spacing, new_spacing)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
