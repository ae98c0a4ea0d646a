"""Tile positions of the sliding window (``tile_starts``), against nnU-Net v2's own rule."""
from __future__ import annotations

import itertools
import math

import pytest
from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

from chimerax.medseg.inference.sliding_window import tile_starts

SIZES = [(64, 64, 64), (65, 64, 200), (100, 50), (129, 7, 128), (300, 300, 31), (1, 160, 160)]
TILES = [(64, 64, 64), (32, 48, 64), (64, 64), (128, 128, 128), (20, 192, 160), (1, 160, 160)]
STEPS = [0.5, 0.75, 1.0, 0.3]


@pytest.mark.parametrize("size, tile", [(s, t) for s, t in itertools.product(SIZES, TILES) if len(s) == len(t)])
@pytest.mark.parametrize("step", STEPS)
def test_tile_starts_equal_nnunets_where_the_image_covers_a_tile(size, tile, step):
    if all(s >= t for s, t in zip(size, tile)):
        assert tile_starts(size, tile, step) == compute_steps_for_sliding_window(size, tile, step)


@pytest.mark.parametrize("size, tile, step", [((100, 50, 31), (64, 64, 64), 0.5), ((300, 17), (128, 128), 0.75),
                                              ((640,), (96,), 0.3), ((97,), (96,), 1.0)])
def test_tiles_cover_the_image_with_the_promised_overlap(size, tile, step):
    for extent, patch, starts in zip(size, tile, tile_starts(size, tile, step)):
        padded = max(extent, patch)  # smaller axes are padded up to one tile
        assert starts[0] == 0 and starts[-1] == padded - patch
        assert starts == sorted(set(starts))
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        assert all(g <= math.ceil(patch * step) for g in gaps)  # overlap of (1 - step) of a tile, to the voxel


def test_an_axis_smaller_than_the_tile_gets_one_tile_the_others_as_nnunet():
    # nnU-Net pads such an image up to the tile first; our rule does the same inside tile_starts
    assert tile_starts((10, 200), (64, 64), 0.5) == compute_steps_for_sliding_window((64, 200), (64, 64), 0.5)
    assert tile_starts((10, 200), (64, 64), 0.5)[0] == [0]
