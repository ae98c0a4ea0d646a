"""Image resampling keeps float32 input in float32 (no float64 copy of a whole-body CT) with unchanged values."""
from __future__ import annotations

import numpy as np
import pytest

from chimerax.medseg.preprocessing.resampling import resample_volume


@pytest.mark.parametrize("order, axis, order_z", [(3, None, 0), (1, None, 0), (0, None, 0), (3, 0, 0), (3, 0, 1)])
def test_float32_input_gives_the_float64_result_rounded(order, axis, order_z):
    rng = np.random.default_rng(order * 10 + (axis or 0) + order_z)
    volume = (rng.normal(size=(7, 23, 19)) * 300).astype(np.float32)
    new_shape = (15, 11, 30)
    fast = resample_volume(volume, new_shape, order, axis, order_z)
    reference = resample_volume(volume.astype(np.float64), new_shape, order, axis, order_z)
    assert reference.dtype == np.float64
    assert fast.dtype == (np.float64 if axis is not None and order_z else np.float32)
    np.testing.assert_array_equal(fast, reference.astype(fast.dtype))
