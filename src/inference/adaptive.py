"""Adaptive ensembling: every fold and mirroring only where the cheap survey leaves the label in doubt.

nnU-Net's full ensemble runs every fold times every mirroring on every tile (5 x 8 = 40 passes
per tile). Most tiles do not need it: far from any structure, or deep inside one, more passes
change no label. Here every tile first gets a *survey*: one pass per fold, fold f with the f-th
mirroring (so the survey samples both the folds' disagreement and the mirrorings'; a one-fold
model's survey is its unmirrored pass). From the Gaussian-weighted survey estimate the voxels in
doubt are found, and the tiles that answer for enough of them get all the other passes too.

The criterion, stated:
- a voxel is *in doubt* when the survey's top-two probability margin is below ``threshold``
  (softmax models: p1 - p2; region models: the smallest |2p - 1| over the regions, i.e. the
  distance of the nearest region decision from 0.5);
- a tile *answers for* the doubt of a voxel in proportion to its share of that voxel's Gaussian
  weight (the tiles covering a voxel share it; the tile whose centre is nearest holds most);
- a tile gets every pass when the doubt it answers for reaches ``MIN_DOUBT_FRACTION`` of its
  voxels (at least one voxel); otherwise it keeps the mean of its survey passes.
Counting shares instead of "any voxel in doubt" is what lets a tile ignore a few doubtful voxels
near its border, where its Gaussian weight is small and its neighbours decide the label.

Exactness: a marked tile's contribution is the mean over all its passes, so wherever every tile
covering a voxel was marked the result is the full ensemble's Gaussian-weighted average, up to
float rounding (accumulated in float32 here).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..errors import Cancelled
from .sliding_window import Progress, ShouldStop, SlidingWindow, mirror_combinations

# The survey passes are kept for the marked tiles while they take at most this much memory (float32
# outputs of every tile); above it a marked tile's survey passes are run again instead.
KEEP_FIRST_PASSES_BYTES = 1 << 30
# A tile gets every pass when the doubt it answers for reaches this fraction of its voxels: 1/4096 is
# 26 voxels of the demo model's 40 x 56 x 48 tile, an 8^3 cube of a 128^3 one (benchmarks/adaptive.py).
MIN_DOUBT_FRACTION = 1 / 4096


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
                "tiles in doubt got every fold and mirroring")


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


def survey_mirrorings(num_folds: int, combos: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """The survey's mirroring for each fold: fold f gets the f-th combination (cyclically)."""
    return [combos[f % len(combos)] for f in range(num_folds)]


def doubt_answered(doubt: torch.Tensor, tiles: Sequence[tuple], weights: torch.Tensor,
                   weight_sum: torch.Tensor) -> list[float]:
    """Per tile, the voxels in doubt it answers for: each counts with the tile's share of its Gaussian weight."""
    share = doubt.float() / weight_sum
    return [float((share[tile] * weights).sum()) for tile in tiles]


def tiles_in_doubt(doubt: torch.Tensor, tiles: Sequence[tuple], weights: torch.Tensor,
                   weight_sum: torch.Tensor) -> list[int]:
    """The tiles that get every pass (the module's criterion)."""
    minimum = max(1.0, MIN_DOUBT_FRACTION * weights.numel())
    return [i for i, d in enumerate(doubt_answered(doubt, tiles, weights, weight_sum)) if d >= minimum]


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
    folds = len(fold_weights)
    count = folds * len(combos)
    survey = survey_mirrorings(folds, combos)

    def tile_out(tile: tuple, mirrorings: Sequence[tuple[int, ...]]) -> torch.Tensor:
        if should_stop is not None and should_stop():
            raise Cancelled("Prediction was stopped.")
        return window.forward(padded[(slice(None),) + tile][None], mirrorings)[0].float() * len(mirrorings)

    tile_bytes = 4 * window.num_outputs * int(weights.numel())
    keep = len(tiles) * tile_bytes <= KEEP_FIRST_PASSES_BYTES  # else a marked tile's survey is run again
    surveyed: dict[int, torch.Tensor] = {}  # per tile: the sum of its survey passes
    for f, fold in enumerate(fold_weights):  # the survey: every tile, one pass per fold
        load_fold(fold)
        for i, tile in enumerate(tiles):
            out = tile_out(tile, [survey[f]])
            total[(slice(None),) + tile] += out * (weights / folds)
            if f == 0:
                weight_sum[tile] += weights
            if keep:
                surveyed[i] = out if f == 0 else surveyed[i].add_(out)
            report(0.02 + 0.3 * (f * len(tiles) + i + 1) / (folds * len(tiles)),
                   f"survey: fold {f + 1} of {folds}, tile {i + 1} of {len(tiles)}")
    doubt = uncertain_voxels(total / weight_sum, threshold, region_based, window.activation is not None)
    marked = tiles_in_doubt(doubt, tiles, weights, weight_sum)
    for f, fold in enumerate(fold_weights if marked else []):  # every other pass on the tiles in doubt
        load_fold(fold)
        others = [c for c in combos if c != survey[f]]
        for i, index in enumerate(marked):
            tile = tiles[index]
            out = tile_out(tile, others) if others else torch.zeros_like(total[(slice(None),) + tile])
            if not keep:  # this fold's survey pass again: it leaves the survey mean for the ensemble's
                out = out + tile_out(tile, [survey[f]]) * (1 - count / folds)
            elif f == 0:  # the tile's survey mean gives way to its share of the ensemble mean
                out = out + surveyed.pop(index) * (1 - count / folds)
            total[(slice(None),) + tile] += out * (weights / count)
            report(0.32 + 0.65 * (f * len(marked) + i + 1) / max(1, folds * len(marked)),
                   f"fold {f + 1} of {folds}, tile in doubt {i + 1} of {len(marked)}")
    passes = Passes(len(tiles) * folds + len(marked) * (count - folds if keep else count), len(tiles) * count,
                    len(tiles), len(marked))
    return (total / weight_sum)[(slice(None),) + unpad], passes
