"""The export in pieces: labels equal to the whole export's, whatever the piece size (issue 18 item 6)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from chimerax.medseg import memory
from chimerax.medseg.errors import MedSegError
from chimerax.medseg.inference.export import export, export_labels_in_pieces
from chimerax.medseg.inference.export_pieces import boxes
from chimerax.medseg.models.labels import LabelScheme
from chimerax.medseg.preprocessing.pipeline import PreprocessRecord
from chimerax.medseg.preprocessing.resample_pieces import axis_maps, resample_box
from chimerax.medseg.preprocessing.resampling import resample_logits

TINY = 1  # bytes: forces the smallest pieces (one row each)
PLAIN = LabelScheme({1: "a", 2: "b", 5: "c", 7: "d"})
REGIONS = LabelScheme({1: "whole", 2: "core"}, regions=((1, 2), (2,)), regions_class_order=(1, 2))


def smooth_logits(channels: int, shape, seed: int) -> torch.Tensor:
    """Random logits with structure on a few voxels' scale, float16 like the sliding-window accumulator."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(channels, *[max(2, s // 3) for s in shape])).astype(np.float32)
    up = torch.nn.functional.interpolate(torch.from_numpy(coarse)[None], size=tuple(shape), mode="trilinear")[0]
    return (up * 4 + torch.from_numpy(rng.normal(scale=0.3, size=up.shape).astype(np.float32))).half()


def record_for(network_shape, cropped_shape, spacing, target, transpose=(0, 1, 2), margin=(2, 0, 3)):
    full = tuple(s + 2 * m for s, m in zip(cropped_shape, margin))
    bbox = [[m, m + s] for s, m in zip(cropped_shape, margin)]
    return PreprocessRecord(list(transpose), full, bbox, tuple(cropped_shape), tuple(spacing), tuple(target))


CASES = {
    # name: (network grid, cropped image grid, image spacing, network spacing, config)
    "isotropic upsampling": ((9, 11, 10), (17, 25, 21), (1.5, 0.8, 0.8), (3.0, 2.0, 1.6), {}),
    "down and up": ((14, 9, 12), (9, 20, 12), (2.0, 0.7, 1.0), (1.3, 1.5, 1.0), {}),
    "separate z, nearest": ((6, 16, 14), (11, 29, 31), (5.0, 0.7, 0.7), (3.0, 1.3, 1.5), {}),
    "separate z, linear": ((6, 16, 14), (11, 29, 31), (5.0, 0.7, 0.7), (3.0, 1.3, 1.5),
                           {"resampling_fn_probabilities_kwargs": {"order": 1, "order_z": 1}}),
    "forced separate z": ((8, 10, 12), (15, 21, 23), (1.0, 0.5, 0.5), (2.0, 1.0, 1.0),
                          {"resampling_fn_probabilities_kwargs": {"force_separate_z": True, "order_z": 0}}),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("scheme", ["plain", "regions"])
def test_pieces_give_the_labels_of_one_piece(name, scheme):
    network, cropped, spacing, target, config = CASES[name]
    labels = PLAIN if scheme == "plain" else REGIONS
    logits = smooth_logits(labels.num_outputs, network, seed=len(name))
    record = record_for(network, cropped, spacing, target, transpose=(2, 0, 1))
    whole = export_labels_in_pieces(logits, record, config, labels, piece_bytes=1 << 40)
    pieced = export_labels_in_pieces(logits, record, config, labels, piece_bytes=TINY)
    assert pieced.shape == tuple(np.array(record.shape_before_cropping)[record.transpose_backward])
    assert len(np.unique(whole)) > 2  # the case exercises several labels
    np.testing.assert_array_equal(pieced, whole)


@pytest.mark.parametrize("name", list(CASES))
def test_piecewise_resampling_equals_the_whole_torch_resampling(name):
    network, cropped, spacing, target, config = CASES[name]
    kwargs = config.get("resampling_fn_probabilities_kwargs", {})
    logits = smooth_logits(3, network, seed=7)
    reference = resample_logits(logits.float(), cropped, target, spacing, order=1, order_z=kwargs.get("order_z", 0),
                                force_separate_z=kwargs.get("force_separate_z"))
    maps = axis_maps(network, cropped, target, spacing, kwargs.get("order_z", 0), kwargs.get("force_separate_z"))
    pieces = torch.zeros_like(reference)
    for box in boxes(cropped, 3, piece_bytes=4 * 3 * 3 * cropped[-1] * 2):  # two rows a piece
        pieces[(slice(None),) + tuple(slice(a, b) for a, b in box)] = resample_box(logits, maps, box)
    np.testing.assert_allclose(pieces.numpy(), reference.numpy(), atol=2e-5, rtol=0)


@pytest.mark.parametrize("scheme", ["plain", "regions"])
def test_pieced_labels_agree_with_the_probabilities_path_of_today(scheme):
    """export() without probabilities (pieces) against export() with them (every channel resampled at once,
    softmax / sigmoid, as before): equal wherever the top two channels are not within float rounding."""
    labels = PLAIN if scheme == "plain" else REGIONS
    network, cropped, spacing, target, config = CASES["separate z, nearest"]
    logits = smooth_logits(labels.num_outputs, network, seed=3)
    record = record_for(network, cropped, spacing, target)
    pieced, none = export(logits, record, config, labels, piece_bytes=TINY)
    whole, probabilities = export(logits, record, config, labels, with_probabilities=True)
    assert none is None and probabilities is not None
    assert np.array_equal(pieced, whole)


def test_a_v1_model_averaging_probabilities_is_labelled_from_them():
    network, cropped, spacing, target, _ = CASES["isotropic upsampling"]
    probabilities = torch.softmax(smooth_logits(REGIONS.num_outputs, network, seed=5).float(), 0)
    record = record_for(network, cropped, spacing, target)
    config = {"average_probabilities": True}
    pieced, _ = export(probabilities, record, config, REGIONS, piece_bytes=TINY)
    whole, _ = export(probabilities, record, config, REGIONS, with_probabilities=True)
    assert len(np.unique(whole)) > 1
    np.testing.assert_array_equal(pieced, whole)


def test_the_memory_check_refuses_only_the_whole_export(monkeypatch):
    """With too little memory for every channel on the full grid, labels still come (in pieces); asking
    for probabilities is refused up front with a message that says what to leave out."""
    labels = LabelScheme({i: f"s{i}" for i in range(1, 118)})
    network, cropped = (8, 10, 10), (40, 48, 48)
    record = record_for(network, cropped, (1.5, 0.8, 0.8), (3.0, 3.0, 3.0))
    whole_needs = 2 * 118 * int(np.prod(cropped)) * 4  # 174 MB
    monkeypatch.setattr(memory, "available_memory", lambda: whole_needs // 4)
    logits = smooth_logits(118, network, seed=1)
    label_map, _ = export(logits, record, {}, labels, piece_bytes=1 << 20)
    assert label_map.shape == record.shape_before_cropping and label_map.max() > 0
    with pytest.raises(MedSegError, match="Leave out --save-probabilities"):
        export(logits, record, {}, labels, with_probabilities=True)


def test_pieces_cover_the_grid_once():
    shape = (5, 7, 9)
    hits = np.zeros(shape, int)
    for budget in (1, 3 * 4 * 2 * 9 * 3, 3 * 4 * 2 * 9 * 7 * 2, 1 << 30):
        hits[:] = 0
        for box in boxes(shape, 2, budget):
            hits[tuple(slice(a, b) for a, b in box)] += 1
        assert (hits == 1).all()
