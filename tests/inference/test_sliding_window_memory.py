"""The sliding window's memory savings change no value: channels weighted a few at a time, and the float16
accumulator handed over without a float32 copy (issue 18 item 6)."""
from __future__ import annotations

import pytest
import torch

from chimerax.medseg import memory
from chimerax.medseg.errors import MedSegError
from chimerax.medseg.inference import sliding_window
from chimerax.medseg.inference.sliding_window import SlidingWindow


def _window(outputs: int) -> SlidingWindow:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 8, 3, padding=1), torch.nn.LeakyReLU(),
                              torch.nn.Conv3d(8, outputs, 3, padding=1)).eval()
    return SlidingWindow(net, (8, 12, 10), outputs, step=0.5)


def test_weighting_a_few_channels_at_a_time_gives_the_whole_tiles_sums(monkeypatch):
    data = torch.randn(1, 13, 30, 17)
    window = _window(outputs=37)  # more channels than are weighted at once, and not a multiple of it
    with torch.inference_mode():
        pieces = window(data)
        monkeypatch.setattr(sliding_window, "_CHANNELS_AT_ONCE", 1000)
        whole = window(data)
    assert pieces.shape == (37, 13, 30, 17)
    assert torch.equal(pieces, whole)


def test_the_accumulator_can_be_kept_as_it_is():
    data = torch.randn(1, 9, 20, 21)
    window = _window(outputs=5)
    with torch.inference_mode():
        kept = window(data, keep_accumulator_dtype=True)
        converted = window(data)
    assert kept.dtype == torch.float16 and converted.dtype == torch.float32
    assert torch.equal(kept.float(), converted)


def test_sums_that_cannot_fit_are_refused_before_any_tile(monkeypatch):
    window = _window(outputs=118)
    calls = []
    window.forward = lambda *args, **kwargs: calls.append(1)  # type: ignore[method-assign]
    needed = 119 * 40 * 60 * 60 * 2  # float16 sums of 118 channels + the weights, 34 MB
    monkeypatch.setattr(memory, "available_memory", lambda: needed // 2)
    with pytest.raises(MedSegError, match="sums of 118 output channels"):
        window(torch.zeros(1, 40, 60, 60))
    assert calls == []
