"""Out of GPU memory: run again with the data and the accumulators on the CPU.

nnU-Net keeps the whole case and its logits on the GPU, and when that runs out of memory it
starts over with them on the CPU, sending only tiles to the GPU. We do the same: one retry,
with a warning that says why the run is slower.
"""
from __future__ import annotations

import warnings
from typing import Callable, TypeVar

import torch

from .sliding_window import SlidingWindow

T = TypeVar("T")


def with_cpu_results_fallback(window: SlidingWindow, run: Callable[[], T]) -> T:
    """``run()``; if it runs out of device memory with the results on the device, ``run()`` once more with
    them on the CPU."""
    try:
        return run()
    except torch.OutOfMemoryError:
        if not window.results_on_device:
            raise
    window.results_on_device = False
    device = window.device
    if device is not None and device.type == "cuda":
        torch.cuda.empty_cache()
    warnings.warn(f"The case did not fit in the memory of {device} with its logits there; predicting again with "
                  "the logits in CPU memory (only tiles go to the device: slower).", stacklevel=2)
    return run()
