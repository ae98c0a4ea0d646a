"""Our contour tracer against scikit-image's marching squares: the same loops, through the same
midpoints, and filled by the even-odd rule they give the mask back exactly."""
from __future__ import annotations

import numpy as np
import pytest

from chimerax.medseg.images.mask_contours import mask_contours
from chimerax.medseg.images.polygon_fill import fill_contours


@pytest.mark.parametrize("seed", range(6))
def test_random_masks_match_marching_squares(seed):
    from skimage.measure import find_contours  # the oracle (a test dependency)
    rng = np.random.default_rng(seed)
    for _ in range(25):
        mask = rng.random((int(rng.integers(1, 40)), int(rng.integers(1, 40)))) < rng.uniform(0.05, 0.9)
        ours = mask_contours(mask)
        theirs = find_contours(np.pad(mask.astype(float), 1), 0.5)
        assert len(ours) == len(theirs)
        their_points = {tuple(p) for c in theirs for p in np.round((c - 1.0)[:, ::-1] * 2).astype(int)}
        our_points = {tuple(p) for c in ours for p in np.round(c * 2).astype(int)}
        assert our_points <= their_points  # ours drop only midpoints inside straight runs
        np.testing.assert_array_equal(fill_contours(ours, mask.shape), mask)


def test_hole_island_and_diagonal_touch():
    mask = np.zeros((12, 12), bool)
    mask[1:11, 1:11] = True
    mask[3:9, 3:9] = False      # hole
    mask[5:7, 5:7] = True       # island in the hole
    mask[0, 11] = True          # touches the block only at a corner: its own loop
    contours = mask_contours(mask)
    assert len(contours) == 4
    np.testing.assert_array_equal(fill_contours(contours, mask.shape), mask)
    assert mask_contours(np.zeros((3, 3), bool)) == []
