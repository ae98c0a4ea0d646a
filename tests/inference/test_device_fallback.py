"""nnU-Net's fallback after CUDA runs out of memory: the same prediction again with the logits in CPU memory.

No GPU here: the real (tiny) network raises torch's own OutOfMemoryError on its first call, as CUDA would,
and the rest of the run is real.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from chimerax.medseg.images import read_case
from chimerax.medseg.inference.predictor import Predictor
from chimerax.medseg.inference.sliding_window import to_compute_device


def _out_of_memory_once(net: torch.nn.Module) -> list[int]:
    """Make ``net`` fail its first forward pass the way CUDA does when memory runs out; count the calls."""
    calls = [0]
    real_forward = net.forward

    def forward(x):
        calls[0] += 1
        if calls[0] == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(x)
    net.forward = forward
    return calls


@pytest.mark.parametrize("adaptive", [False, True])
def test_out_of_memory_predicts_again_with_results_on_the_cpu(tiny_model, case_files, adaptive):
    image = read_case(case_files)
    expected = Predictor.from_folder(tiny_model, device="cpu", adaptive=adaptive).predict(image)
    predictor = Predictor.from_folder(tiny_model, device="cpu", adaptive=adaptive)
    calls = _out_of_memory_once(predictor.network())
    with pytest.warns(UserWarning, match="did not fit in the memory"):
        got = predictor.predict(image)
    assert calls[0] > 1  # the failed pass, then a whole second run
    np.testing.assert_array_equal(got.labels, expected.labels)


def test_out_of_memory_with_results_already_on_the_cpu_is_not_retried(tiny_model, case_files):
    predictor = Predictor.from_folder(tiny_model, device="cpu")
    net = predictor.network()
    calls = [0]

    def forward(x):
        calls[0] += 1
        raise torch.OutOfMemoryError("CUDA out of memory.")
    net.forward = forward
    with pytest.raises(torch.OutOfMemoryError):
        predictor.predict(read_case(case_files))
    assert calls[0] == 2  # the first run and the one retry on the CPU; no third


def test_tiles_stay_where_they_are_when_no_device_or_the_same_one():
    batch = torch.arange(6.0).reshape(1, 1, 6)
    assert to_compute_device(batch, None) is batch
    assert to_compute_device(batch, torch.device("cpu")) is batch
