"""Adaptive ensembling: every fold and mirroring only where the cheap survey leaves the label in doubt.

nnU-Net's full ensemble runs every fold times every mirroring on every tile (5 x 8 = 40 passes
per tile). Most tiles do not need it: far from any structure, or deep inside one, more passes
change no label. Here every tile first gets a *survey*: one pass per fold, fold f with the f-th
mirroring, so the survey samples both the folds' disagreement and the mirrorings'; a one-fold
model's survey is two passes, unmirrored and mirrored along every axis. The survey's mean and spread
say which voxels more passes could flip, and the tiles that answer for enough of them get all the
other passes too.

The criterion, stated:
- a voxel's *confidence* is how sure the survey is that the full ensemble keeps its label. The full
  ensemble differs from the survey only by the mirrorings each fold has not yet run (every fold is in
  both). If a pass's decision margin (top two classes; for region models each region's value against
  its threshold) scatters with standard deviation s over the survey's S passes (k per fold), the full
  mean moves from the survey's mean margin m by about s * sqrt((1/k - 1/M) / F) (F folds, M
  mirrorings; with several folds s also holds their disagreement, so it is an upper bound). Confidence
  = P(|t| < |m| / that), t Student's with S - 1 degrees of freedom: 0 for a coin toss, 1 where the
  passes agree exactly. For softmax models the spread of m_a - m_b is bounded by s_a + s_b; for region
  models the least confident region counts;
- a voxel is *in doubt* when its confidence is below ``threshold``;
- a tile *answers for* the doubt of a voxel in proportion to its share of that voxel's Gaussian
  weight (the tiles covering a voxel share it; the tile whose centre is nearest holds most);
- a tile gets every pass when the doubt it answers for reaches ``MIN_DOUBT_FRACTION`` of its
  voxels (at least one voxel); otherwise it keeps the mean of its survey passes.
Measuring the spread spares a tile whose passes agree on a small margin (the border of a structure
they all see alike) and spends the passes where they disagree. Counting shares instead of "any
voxel in doubt" lets a tile ignore a few doubtful voxels near its border, where its Gaussian weight
is small and its neighbours decide the label.

Exactness: a marked tile's contribution is the mean over all its passes, so wherever every tile
covering a voxel was marked the result is the full ensemble's Gaussian-weighted average, up to
float rounding (accumulated in float32 here).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import torch
from scipy.special import stdtr

from ..errors import Cancelled
from ..memory import array_bytes, check_memory
from .sliding_window import Progress, ShouldStop, SlidingWindow, mirror_combinations

# Each tile's survey sum and sum of squares are kept while they take at most this much memory (float32, every
# tile); above it the squares are blended over tiles and a marked tile's survey passes are run again.
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


def spread(mean: torch.Tensor, mean_square: torch.Tensor, passes: int) -> torch.Tensor:
    """The standard deviation over ``passes`` passes from their mean and mean square (sample, not population)."""
    return ((mean_square - mean * mean).clamp_min(0) * (passes / (passes - 1))).sqrt()


def confidence(mean: torch.Tensor, sd: torch.Tensor, per_fold: int, folds: int, mirrorings: int,
               region_based: bool, probabilities: bool = False) -> torch.Tensor:
    """Per voxel, the survey's confidence that more passes keep its label (the module's criterion), from the
    survey's mean (C, ...) and the standard deviation (C, ...) of its ``per_fold`` passes of each fold."""
    if region_based:  # each region's decision: its value against 0.5 (probabilities) or 0 (logits)
        margin, scatter = mean - (0.5 if probabilities else 0.0), sd
    else:
        top = torch.topk(mean, 2, dim=0)
        margin = (top.values[0] - top.values[1])[None]
        scatter = sd.gather(0, top.indices[:1]) + sd.gather(0, top.indices[1:2])  # the difference's, bounded
    scale = scatter * (max(1 / per_fold - 1 / mirrorings, 0.0) / folds) ** 0.5
    z = torch.where(scale > 0, margin.abs() / scale.clamp_min(torch.finfo(torch.float32).tiny),
                    torch.full_like(margin, float("inf")))  # passes that agree exactly: certain
    sure = 2 * torch.from_numpy(stdtr(per_fold * folds - 1, z.cpu().numpy())).to(torch.float32) - 1
    return sure.to(mean.device).amin(dim=0)


def survey_mirrorings(num_folds: int, combos: Sequence[tuple[int, ...]]) -> list[list[tuple[int, ...]]]:
    """Each fold's survey mirrorings: fold f the f-th combination (cyclically); a lone fold two, unmirrored
    and mirrored along every axis (a spread needs two passes)."""
    if num_folds == 1:
        return [[combos[0], combos[-1]]] if len(combos) > 1 else [[combos[0]]]
    return [[combos[f % len(combos)]] for f in range(num_folds)]


def doubt_answered(doubts: Sequence[torch.Tensor], tiles: Sequence[tuple], weights: torch.Tensor,
                   weight_sum: torch.Tensor) -> list[float]:
    """Per tile, the voxels in doubt (``doubts``: each tile's map over its box) it answers for: each counts with
    the tile's share of its Gaussian weight."""
    return [float((doubt.float() * weights / weight_sum[tile]).sum()) for doubt, tile in zip(doubts, tiles)]


def tiles_in_doubt(doubts: Sequence[torch.Tensor], tiles: Sequence[tuple], weights: torch.Tensor,
                   weight_sum: torch.Tensor) -> list[int]:
    """The tiles that get every pass (the module's criterion)."""
    minimum = max(1.0, MIN_DOUBT_FRACTION * weights.numel())
    return [i for i, d in enumerate(doubt_answered(doubts, tiles, weights, weight_sum)) if d >= minimum]


def adaptive_logits(window: SlidingWindow, data: torch.Tensor, fold_weights: Sequence[Any],
                    load_fold: Callable[[Any], None], threshold: float, region_based: bool,
                    progress: Progress | None = None, should_stop: ShouldStop | None = None,
                    ) -> tuple[torch.Tensor, Passes]:
    """The ensemble's output for preprocessed ``data`` (c, ...), spending passes where they can matter."""
    report = progress or (lambda fraction, message: None)
    padded, unpad, tiles, weights = window.prepare(data)
    weights = weights.float()
    shape = padded.shape[1:]
    # Each tile's survey sum and sum of squares are kept while they fit: its own spread, and a marked tile's
    # survey need not run again. Else the squares are blended over tiles (their disagreement makes that an
    # upper bound on the spread) and a marked tile's survey runs again.
    tile_bytes = 4 * window.num_outputs * int(weights.numel())
    keep = 2 * len(tiles) * tile_bytes <= KEEP_FIRST_PASSES_BYTES
    if padded.device.type == "cpu":
        sums_bytes = 2 * len(tiles) * tile_bytes if keep else array_bytes((window.num_outputs, *shape), 4)
        check_memory(array_bytes((window.num_outputs + 1, *shape), 4) + sums_bytes,
                     f"Adaptive ensembling's float32 sums and squares of {window.num_outputs} outputs over "
                     f"{tuple(shape)} voxels", "Crop the image to the region of interest, or leave out --adaptive.")
    total = torch.zeros((window.num_outputs, *shape), dtype=torch.float32, device=padded.device)
    weight_sum = torch.zeros(shape, dtype=torch.float32, device=padded.device)
    combos = mirror_combinations(window.mirror_axes)
    folds = len(fold_weights)
    count = folds * len(combos)
    survey = survey_mirrorings(folds, combos)
    per_fold = len(survey[0])
    n = folds * per_fold  # survey passes per tile

    def tile_out(tile: tuple, mirrorings: Sequence[tuple[int, ...]]) -> torch.Tensor:
        if should_stop is not None and should_stop():
            raise Cancelled("Prediction was stopped.")
        return window.forward(padded[(slice(None),) + tile][None], mirrorings)[0].float() * len(mirrorings)

    sums: dict[int, list[torch.Tensor]] = {}
    square = None if keep else torch.zeros_like(total)
    for f, fold in enumerate(fold_weights):  # the survey: every tile, per_fold passes of every fold
        load_fold(fold)
        for i, tile in enumerate(tiles):
            for mirroring in survey[f]:
                out = tile_out(tile, [mirroring])
                total[(slice(None),) + tile] += out * (weights / n)
                if square is not None:
                    square[(slice(None),) + tile] += out * out * (weights / n)
                elif i in sums:
                    sums[i][0].add_(out)
                    sums[i][1].addcmul_(out, out)
                else:
                    sums[i] = [out, out * out]
            if f == 0:
                weight_sum[tile] += weights
            report(0.02 + 0.3 * (f * len(tiles) + i + 1) / (folds * len(tiles)),
                   f"survey: fold {f + 1} of {folds}, tile {i + 1} of {len(tiles)}")
    estimate = total / weight_sum

    def in_doubt(mean: torch.Tensor, sd: torch.Tensor) -> torch.Tensor:
        return confidence(mean, sd, per_fold, folds, len(combos), region_based, window.activation is not None) \
            < threshold

    if count == n:  # the survey was every pass: nothing is left to run
        marked: list[int] = []
    elif square is None:
        marked = tiles_in_doubt([in_doubt(estimate[(slice(None),) + t], spread(sums[i][0] / n, sums[i][1] / n, n))
                                 for i, t in enumerate(tiles)], tiles, weights, weight_sum)
    else:
        whole = in_doubt(estimate, spread(estimate, square / weight_sum, n))
        marked, square = tiles_in_doubt([whole[t] for t in tiles], tiles, weights, weight_sum), None
    del estimate
    surveyed = {i: sums[i][0] for i in marked if i in sums}
    sums.clear()
    for f, fold in enumerate(fold_weights if marked else []):  # every other pass on the tiles in doubt
        load_fold(fold)
        others = [c for c in combos if c not in survey[f]]
        for i, index in enumerate(marked):
            tile = tiles[index]
            out = tile_out(tile, others)  # never empty: a marked tile means passes are left (count > n)
            if not keep:  # this fold's survey passes again: they leave the survey mean for the ensemble's
                out = out + tile_out(tile, survey[f]) * (1 - count / n)
            elif f == 0:  # the tile's survey mean gives way to its share of the ensemble mean
                out = out + surveyed.pop(index) * (1 - count / n)
            total[(slice(None),) + tile] += out * (weights / count)
            report(0.32 + 0.65 * (f * len(marked) + i + 1) / max(1, folds * len(marked)),
                   f"fold {f + 1} of {folds}, tile in doubt {i + 1} of {len(marked)}")
    run = len(tiles) * n + len(marked) * (count - n if keep else count)
    return (total / weight_sum)[(slice(None),) + unpad], Passes(run, len(tiles) * count, len(tiles), len(marked))
