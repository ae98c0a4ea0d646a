"""Training batches: patches drawn (and, on the CPU, augmented) in data worker processes.

The stream for one process yields, for steps ``start, start+1, ...``, that process's share of
the global batch. Worker ``w`` of ``W`` makes steps ``start + w, start + w + W, ...`` and
torch's loader returns them round-robin, so the order never depends on the worker count.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import IterableDataset

from .augmentation import Augmenter
from .data import PatchSampler, sample_seed

AUGMENTATION_STREAM = 7


class BatchStream(IterableDataset):
    """Yields ``(step, data, seg)`` tensors: data (b, c, *patch) float32, seg (b, 1, *patch) int16."""

    def __init__(self, sampler: PatchSampler, indices: Sequence[int], start_step: int,
                 augmenter: Augmenter | None, augment_here: bool, seed: int) -> None:
        self.sampler, self.indices, self.start_step = sampler, list(indices), int(start_step)
        self.augmenter, self.augment_here, self.seed = augmenter, augment_here, seed

    def __iter__(self):
        import torch
        from torch.utils.data import get_worker_info
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        if info:
            torch.set_num_threads(1)  # workers share the cores with the training process
        step = self.start_step + worker
        while True:
            data, seg = self.sampler.batch(step, self.indices)
            data, seg = torch.from_numpy(data), torch.from_numpy(seg)
            if self.augment_here and self.augmenter is not None:
                data, seg = augment_batch(self.augmenter, data, seg, step, self.indices, self.seed)
            yield step, data, seg
            step += workers


def augment_batch(augmenter: Augmenter, data, seg, step: int, indices: Sequence[int], seed: int):
    """Augment each sample with its own generator (seeded by its place in the global batch)."""
    import torch
    outs_d, outs_s = [], []
    for i, index in enumerate(indices):
        rng = np.random.default_rng(sample_seed(seed, step, index, AUGMENTATION_STREAM))
        d, s = augmenter(data[i], seg[i].float(), rng)
        outs_d.append(d)
        outs_s.append(s)
    seg = torch.stack(outs_s).round().to(torch.int16)
    return torch.stack(outs_d).contiguous(), seg.clamp_min(0)  # -1 (outside the case) becomes background


def make_loader(stream: BatchStream, num_workers: int):
    from torch.utils.data import DataLoader
    kwargs: dict[str, Any] = dict(prefetch_factor=4, persistent_workers=True) if num_workers > 0 else {}
    return DataLoader(stream, batch_size=None, num_workers=num_workers, **kwargs)
