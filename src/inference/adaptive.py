"""Adaptive ensembling: every fold and mirroring only where the first pass is uncertain.

nnU-Net's full ensemble runs every fold times every mirroring on every tile (5 x 8 = 40 passes
per tile). Most tiles do not need it: far from any structure, or deep inside one, more passes
change no label. Here every tile first gets one pass (the first fold, not mirrored); from the
Gaussian-weighted estimate of that pass the voxels whose label is in doubt are found, and every
tile covering such a voxel gets all the other passes too.

The criterion, stated: a voxel is *uncertain* when its top-two probability margin is below
``threshold`` (softmax models: p1 - p2; region models: the smallest |2p - 1| over the regions,
i.e. the distance of the nearest region decision from 0.5). A tile that covers an uncertain voxel
gets every pass; a tile that covers none keeps its single pass.

Exactness: a marked tile's contribution is the mean over all its passes, so wherever every tile
covering a voxel was marked (every uncertain voxel, by construction) the result is the full
ensemble's Gaussian-weighted average, up to float rounding (accumulated in float32 here).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..errors import Cancelled
from .sliding_window import Progress, ShouldStop, SlidingWindow, mirror_combinations

# The first passes are kept for the marked tiles while they take at most this much memory (float32
# outputs of every tile); above it a marked tile's first pass is run again instead.
KEEP_FIRST_PASSES_BYTES = 1 << 30


@dataclass
class Passes:
    """Forward passes run (one per tile and mirroring and fold) against the full ensemble's count."""

    run: int
    full: int
    tiles: int
    marked: int

    @property
    def ratio(self) -> float:
        return self.run / self.full if self.full else 1.0

    def __str__(self) -> str:
        return (f"{self.run} of {self.full} forward passes ({self.ratio:.2f}x); {self.marked} of {self.tiles} "
                "tiles got every fold and mirroring")


def uncertain_voxels(estimate: torch.Tensor, threshold: float, region_based: bool,
                     probabilities: bool = False) -> torch.Tensor:
    """Boolean (spatial) map of the voxels whose label the estimate (C, ...) leaves in doubt."""
    if region_based:
        p = estimate if probabilities else torch.sigmoid(estimate)
        margin = (2 * p - 1).abs().amin(dim=0)
    else:
        p = estimate if probabilities else torch.softmax(estimate, dim=0)
        top = torch.topk(p, 2, dim=0).values if p.shape[0] > 1 else torch.cat([p, 1 - p])
        margin = top[0] - top[1]
    return margin < threshold


def adaptive_logits(window: SlidingWindow, data: torch.Tensor, fold_weights: Sequence[Any],
                    load_fold: Callable[[Any], None], threshold: float, region_based: bool,
                    progress: Progress | None = None, should_stop: ShouldStop | None = None,
                    ) -> tuple[torch.Tensor, Passes]:
    """The ensemble's output for preprocessed ``data`` (c, ...), spending passes where they can matter."""
    report = progress or (lambda fraction, message: None)
    padded, unpad, tiles, weights = window.prepare(data)
    weights = weights.float()
    shape = padded.shape[1:]
    total = torch.zeros((window.num_outputs, *shape), dtype=torch.float32, device=padded.device)
    weight_sum = torch.zeros(shape, dtype=torch.float32, device=padded.device)
    combos = mirror_combinations(window.mirror_axes)
    count = len(fold_weights) * len(combos)

    def tile_out(tile: tuple, mirrorings: Sequence[tuple[int, ...]]) -> torch.Tensor:
        if should_stop is not None and should_stop():
            raise Cancelled("Prediction was stopped.")
        return window.forward(padded[(slice(None),) + tile][None], mirrorings)[0].float() * len(mirrorings)

    tile_bytes = 4 * window.num_outputs * int(weights.numel())
    keep = len(tiles) * tile_bytes <= KEEP_FIRST_PASSES_BYTES  # else a marked tile's first pass is run again
    first_passes: dict[int, torch.Tensor] = {}
    load_fold(fold_weights[0])
    for i, tile in enumerate(tiles):  # one pass everywhere: the first fold, not mirrored
        out = tile_out(tile, [()])
        total[(slice(None),) + tile] += out * weights
        weight_sum[tile] += weights
        if keep:
            first_passes[i] = out
        report(0.02 + 0.3 * (i + 1) / len(tiles), f"first pass, tile {i + 1} of {len(tiles)}")
    doubt = uncertain_voxels(total / weight_sum, threshold, region_based, window.activation is not None)
    marked = [i for i, tile in enumerate(tiles) if bool(doubt[tile].any())]
    for f, fold in enumerate(fold_weights):  # every other pass on the marked tiles
        if f:
            load_fold(fold)
        for i, index in enumerate(marked):
            tile = tiles[index]
            if f == 0:  # the tile's single pass gives way to its share of the ensemble mean
                first = first_passes.pop(index) if keep else tile_out(tile, [()])
                out = first - count * first + (tile_out(tile, combos[1:]) if len(combos) > 1 else 0)
            else:
                out = tile_out(tile, combos)  # the sum over this fold's mirrorings
            total[(slice(None),) + tile] += out * (weights / count)
            report(0.32 + 0.65 * (f * len(marked) + i + 1) / max(1, len(fold_weights) * len(marked)),
                   f"fold {f + 1} of {len(fold_weights)}, uncertain tile {i + 1} of {len(marked)}")
    passes = Passes(len(tiles) + len(marked) * (count - 1 if keep else count), len(tiles) * count, len(tiles),
                    len(marked))
    return (total / weight_sum)[(slice(None),) + unpad], passes
