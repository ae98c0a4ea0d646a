"""The cascade's extra inputs: which label values get a one-hot channel, in which order."""
from __future__ import annotations

import numpy as np
import pytest

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.inference.cascade import append_previous_stage, foreground_values


def test_one_channel_per_foreground_label_value_regions_spanning_their_members():
    assert foreground_values({"labels": {"background": 0, "edema": 1, "core": 2}}) == [1, 2]
    # BraTS-style regions: every value a region spans, once, in increasing order (nnU-Net's foreground_labels)
    regions = {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": [3]}
    assert foreground_values({"labels": regions, "regions_class_order": [1, 2, 3]}) == [1, 2, 3]
    assert foreground_values({"labels": {"background": 0, "a": 5, "b": 2, "ignore": 6}}) == [2, 5]


def test_one_hot_channels_follow_the_image_channels_in_value_order():
    data = np.full((2, 3, 4, 5), 7.0, np.float32)
    labels = np.zeros((3, 4, 5), np.int16)
    labels[0] = 5
    labels[1] = 2
    labels[2, 0, 0] = -1  # outside the non-zero region: no label
    out = append_previous_stage(data, labels[None], {"labels": {"background": 0, "a": 5, "b": 2}})
    assert out.shape == (4, 3, 4, 5) and np.all(out[:2] == 7)
    assert np.array_equal(out[2], (labels == 2).astype(np.float32))
    assert np.array_equal(out[3], (labels == 5).astype(np.float32))


def test_a_previous_stage_on_another_grid_is_refused():
    with pytest.raises(MedSegError, match="does not fit"):
        append_previous_stage(np.zeros((1, 3, 4, 5), np.float32), np.zeros((3, 4, 6), np.int16),
                              {"labels": {"background": 0, "a": 1}})
