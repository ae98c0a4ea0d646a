"""Adaptive ensembling: more folds' mirrorings only where the passes so far leave the label in doubt.

nnU-Net's full ensemble runs every fold times every mirroring on every tile (5 x 8 = 40 passes
per tile). Most tiles do not need it: far from any structure, or deep inside one, more passes
change no label. Here each tile gets its passes in stages, one tile after another:
- the *survey*: one pass per fold, fold f with the f-th mirroring, so that it samples both the
  folds' disagreement and the mirrorings'; a one-fold model's survey is two passes, unmirrored and
  mirrored along every axis;
- while the tile is in doubt, each fold's passes double with its next mirrorings (1, 2, 4, 8 of
  8), so that every fold always holds the same number of passes, until every mirroring has run.

The criterion, stated:
- a voxel's *confidence* is how sure the tile's passes so far are that all of its passes keep the
  label. The full mean differs from the current one only by the mirrorings each fold has not run
  (every fold is in both). If a pass's decision margin (top two classes; for region models each
  region's value against its threshold) scatters with standard deviation s between the mirrorings of
  a fold, the full mean moves from the current mean margin m by about s * sqrt((1/k - 1/M) / F) (k
  passes per fold so far, M mirrorings, F folds). With k >= 2, s is the spread within folds (F (k - 1)
  degrees of freedom); after a one-pass-per-fold survey only the spread over all passes is known,
  which also holds the folds' disagreement: an upper bound (F - 1 degrees of freedom). Confidence =
  P(|t| < |m| / that), t Student's: 0 for a coin toss, 1 where the passes agree exactly. For softmax
  models the spread of m_a - m_b is bounded by s_a + s_b; for region models the least confident
  region counts;
- a voxel is *in doubt* when its confidence is below ``threshold``;
- a tile *answers for* the doubt of a voxel in proportion to its share of that voxel's Gaussian
  weight (the tiles covering a voxel share it; the tile whose centre is nearest holds most);
- a tile gets its next stage when the doubt it answers for reaches ``MIN_DOUBT_FRACTION`` of its
  voxels (at least one voxel); otherwise it keeps the mean of its passes so far.
Measuring the spread spares a tile whose passes agree on a small margin (the border of a structure
they all see alike) and spends the passes where they disagree; measuring it again at every stage
stops a tile as soon as its mirrorings agree, whatever its folds think. Counting shares instead of
"any voxel in doubt" lets a tile ignore a few doubtful voxels near its border, where its Gaussian
weight is small and its neighbours decide the label.

Exactness: a tile's contribution is the mean over its passes, Gaussian-weighted as nnU-Net's, so
wherever every tile covering a voxel ran every pass the result is the full ensemble's, up to float
rounding (accumulated in float32 here). Memory: the sums of one tile at a time (each fold's and the
squares), never the whole grid's.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import torch
from scipy.special import stdtr

from ..errors import Cancelled
from ..memory import array_bytes, check_memory
from .sliding_window import Progress, ShouldStop, SlidingWindow, mirror_combinations

# A tile gets its next stage when the doubt it answers for reaches this fraction of its voxels: 1/4096 is
# 26 voxels of the demo model's 40 x 56 x 48 tile, an 8^3 cube of a 128^3 one (benchmarks/adaptive.py).
MIN_DOUBT_FRACTION = 1 / 4096


@dataclass
class Passes:
    """Forward passes run (one per tile and mirroring and fold) against the full ensemble's count, and how many
    passes per fold each tile got."""

    run: int
    full: int
    per_fold: list[int]
    mirrorings: int
    survey: int  # passes per fold every tile got first

    @property
    def ratio(self) -> float:
        return self.run / self.full if self.full else 1.0

    @property
    def tiles(self) -> int:
        return len(self.per_fold)

    @property
    def marked(self) -> int:
        """Tiles that got more than their survey."""
        return sum(k > self.survey for k in self.per_fold)

    def __str__(self) -> str:
        counts = sorted(Counter(self.per_fold).items())
        ran = [f"{tiles} ran {'all ' if k == self.mirrorings else ''}{k}" for k, tiles in counts]
        ran[0] += f" of {self.mirrorings} mirrorings per fold" if counts[0][0] < self.mirrorings else ""
        return f"{self.run} of {self.full} forward passes ({self.ratio:.2f}x); of {self.tiles} tiles, {', '.join(ran)}"


def degrees_of_freedom(per_fold: int, folds: int) -> int:
    """Of the spread ``TileSums.spread`` measures: within folds from two passes per fold, else over all passes."""
    return folds * (per_fold - 1) if per_fold > 1 else folds - 1


def confidence(mean: torch.Tensor, sd: torch.Tensor, per_fold: int, folds: int, mirrorings: int,
               region_based: bool, probabilities: bool = False) -> torch.Tensor:
    """Per voxel, the confidence that every pass keeps the label of the current ``mean`` (C, ...) (the module's
    criterion), from the standard deviation (C, ...) of the passes (``TileSums.spread``), ``per_fold`` of each
    fold so far."""
    if region_based:  # each region's decision: its value against 0.5 (probabilities) or 0 (logits)
        margin, scatter = mean - (0.5 if probabilities else 0.0), sd
    else:
        top = torch.topk(mean, 2, dim=0)
        margin = (top.values[0] - top.values[1])[None]
        scatter = sd.gather(0, top.indices[:1]) + sd.gather(0, top.indices[1:2])  # the difference's, bounded
    scale = scatter * (max(1 / per_fold - 1 / mirrorings, 0.0) / folds) ** 0.5
    z = torch.where(scale > 0, margin.abs() / scale.clamp_min(torch.finfo(torch.float32).tiny),
                    torch.full_like(margin, float("inf")))  # passes that agree exactly: certain
    sure = 2 * torch.from_numpy(stdtr(degrees_of_freedom(per_fold, folds), z.cpu().numpy())).to(torch.float32) - 1
    return sure.to(mean.device).amin(dim=0)


def mirroring_orders(num_folds: int, axes: Sequence[int]) -> list[list[tuple[int, ...]]]:
    """Each fold's mirrorings in the order its stages run them. They come in pairs, a mirroring and its
    complement (flipped along every axis the first is not), so that any two passes of a fold differ along every
    axis and any four along each axis in half of them: the spread within a fold sees every axis from its second
    pass on. Fold f starts at the f-th pair (cyclically; the pair's second mirroring first from the second round
    of folds on), so that the survey meets as many mirrorings as it can; a lone fold runs unmirrored and
    mirrored along every axis first."""
    pairs: list[tuple[tuple[int, ...], ...]] = []
    for combo in mirror_combinations(axes):
        complement = tuple(a for a in axes if a not in combo)
        if not any(combo in pair for pair in pairs):
            pairs.append((combo, complement) if complement != combo else (combo,))
    orders = []
    for fold in range(num_folds):
        turn = [pairs[(fold + j) % len(pairs)] for j in range(len(pairs))]
        orders.append([m for pair in turn for m in (pair[::-1] if (fold // len(pairs)) % 2 else pair)])
    return orders


def stages(num_folds: int, mirrorings: int) -> list[int]:
    """Passes per fold after each stage: the survey's (one, a lone fold's two), then doubling up to every
    mirroring."""
    levels = [min(2 if num_folds == 1 else 1, mirrorings)]
    while levels[-1] < mirrorings:
        levels.append(min(2 * levels[-1], mirrorings))
    return levels


class TileSums:
    """One tile's passes so far: each fold's sum and the sum of squares over all of them (float32)."""

    def __init__(self, folds: int) -> None:
        self.folds = folds
        self.fold_sums: dict[int, torch.Tensor] = {}
        self.square: torch.Tensor | None = None
        self.count = 0

    def add(self, fold: int, out: torch.Tensor) -> None:
        current = self.fold_sums.get(fold)
        self.fold_sums[fold] = out.clone() if current is None else current.add_(out)
        self.square = out * out if self.square is None else self.square.addcmul_(out, out)
        self.count += 1

    def mean(self) -> torch.Tensor:
        return sum(self.fold_sums.values()) / self.count  # type: ignore[return-value]

    def spread(self) -> torch.Tensor:
        """The passes' standard deviation: within folds where each has two or more passes, else over all passes
        (the survey: it holds the folds' disagreement too)."""
        per_fold = self.count // self.folds
        assert self.square is not None and per_fold * self.folds == self.count, "every fold holds as many passes"
        if per_fold > 1:
            explained = sum(s * s for s in self.fold_sums.values()) / per_fold
        else:
            explained = sum(self.fold_sums.values()) ** 2 / self.count
        return ((self.square - explained).clamp_min(0) / degrees_of_freedom(per_fold, self.folds)).sqrt()


def doubt_answered(doubt: torch.Tensor, tile: tuple, weights: torch.Tensor, weight_sum: torch.Tensor) -> float:
    """The voxels in doubt (``doubt``: a map over the tile's box) the tile answers for: each counts with the
    tile's share of its Gaussian weight."""
    return float((doubt.float() * weights / weight_sum[tile]).sum())


def needs_more(doubt: torch.Tensor, tile: tuple, weights: torch.Tensor, weight_sum: torch.Tensor) -> bool:
    """Whether the tile gets its next stage (the module's criterion)."""
    return doubt_answered(doubt, tile, weights, weight_sum) >= max(1.0, MIN_DOUBT_FRACTION * weights.numel())


def adaptive_logits(window: SlidingWindow, data: torch.Tensor, fold_weights: Sequence[Any],
                    load_fold: Callable[[Any], None], threshold: float, region_based: bool,
                    progress: Progress | None = None, should_stop: ShouldStop | None = None,
                    ) -> tuple[torch.Tensor, Passes]:
    """The ensemble's output for preprocessed ``data`` (c, ...), spending passes where they can matter."""
    report = progress or (lambda fraction, message: None)
    padded, unpad, tiles, weights = window.prepare(data)
    weights = weights.float()
    shape = padded.shape[1:]
    folds = len(fold_weights)
    if padded.device.type == "cpu":  # the grid's sums, and one tile's: each fold's, the squares, a pass, the mean
        check_memory(array_bytes((window.num_outputs + 1, *shape), 4)
                     + array_bytes((folds + 4, window.num_outputs, *weights.shape), 4),
                     f"Adaptive ensembling's float32 sums of {window.num_outputs} outputs over {tuple(shape)} voxels",
                     "Crop the image to the region of interest, or leave out --adaptive.")
    total = torch.zeros((window.num_outputs, *shape), dtype=torch.float32, device=padded.device)
    weight_sum = torch.zeros(shape, dtype=torch.float32, device=padded.device)
    for tile in tiles:
        weight_sum[tile] += weights
    combos = mirror_combinations(window.mirror_axes)
    orders, levels = mirroring_orders(folds, window.mirror_axes), stages(folds, len(combos))
    loaded: list[int] = []  # the fold whose weights the network holds

    def run(fold: int, box: torch.Tensor, mirroring: tuple[int, ...]) -> torch.Tensor:
        if should_stop is not None and should_stop():
            raise Cancelled("Prediction was stopped.")
        if loaded != [fold]:
            load_fold(fold_weights[fold])
            loaded[:] = [fold]
        return window.forward(box, [mirroring])[0].float()

    per_fold: list[int] = []
    for i, tile in enumerate(tiles):
        box, sums, done = padded[(slice(None),) + tile][None], TileSums(folds), 0
        for level in levels:
            for fold in range(folds):
                for mirroring in orders[fold][done:level]:
                    sums.add(fold, run(fold, box, mirroring))
            done, mean = level, sums.mean()
            if level == levels[-1] or not needs_more(
                    confidence(mean, sums.spread(), level, folds, len(combos), region_based,
                               window.activation is not None) < threshold, tile, weights, weight_sum):
                break
        total[(slice(None),) + tile] += mean * weights
        per_fold.append(done)
        report(0.02 + 0.95 * (i + 1) / len(tiles),
               f"tile {i + 1} of {len(tiles)}: {done} of {len(combos)} mirrorings per fold")
    passes = Passes(folds * sum(per_fold), folds * len(combos) * len(tiles), per_fold, len(combos), levels[0])
    return (total / weight_sum)[(slice(None),) + unpad], passes
