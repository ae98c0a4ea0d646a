"""Dice + cross-entropy (labels) or Dice + binary cross-entropy (regions), with deep supervision.

Soft Dice as nnU-Net computes it: background left out for label models, optional "batch Dice"
(sums over the whole batch instead of per sample), smoothing 1e-5, voxels of the ignore label
masked out of both terms. ``named_loss`` also gives nnU-Net's loss variants: Dice only, cross-
entropy only, and Dice + CE without smoothing (see ``variants.LOSSES``).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MedSegError

SMOOTH = 1e-5


def soft_dice(probabilities: torch.Tensor, target_onehot: torch.Tensor, mask: torch.Tensor | None,
              batch_dice: bool, smooth: float = SMOOTH) -> torch.Tensor:
    """Per-channel soft Dice (b, k) or (k,) with ``batch_dice``; inputs (b, k, *spatial)."""
    if mask is not None:
        probabilities = probabilities * mask
        target_onehot = target_onehot * mask
    axes = tuple(range(2, probabilities.ndim))
    intersect = (probabilities * target_onehot).sum(axes)
    pred_sum, ref_sum = probabilities.sum(axes), target_onehot.sum(axes)
    if batch_dice:  # one Dice over the whole (global) batch
        intersect, pred_sum, ref_sum = (_sum_over_processes(t.sum(0)) for t in (intersect, pred_sum, ref_sum))
    return (2 * intersect + smooth) / (pred_sum + ref_sum + smooth).clamp_min(1e-8)


def _sum_over_processes(t: torch.Tensor) -> torch.Tensor:
    """Under DDP, add the other processes' sums (with gradients), so batch Dice sees the global batch.

    Every process then computes the same loss; the gather's backward sums the processes' gradients
    and DDP averages them, which gives exactly the single-process gradient.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        from torch.distributed.nn.functional import all_gather
        return torch.stack(all_gather(t)).sum(0)
    return t


class DiceCELoss(nn.Module):
    """Softmax Dice (foreground classes) + cross-entropy, 1:1. Target: (b, 1, *spatial) label values."""

    def __init__(self, batch_dice: bool, ignore_label: int | None = None, dice_weight: float = 1.0,
                 ce_weight: float = 1.0, smooth: float = SMOOTH) -> None:
        super().__init__()
        self.batch_dice, self.ignore_label = batch_dice, ignore_label
        self.dice_weight, self.ce_weight = dice_weight, ce_weight
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target, mask = _labels_and_mask(target, self.ignore_label, logits.dtype)
        total = logits.new_zeros(())
        if self.ce_weight:
            ce = F.cross_entropy(logits, target, reduction="none")
            ce = (ce * mask[:, 0]).sum() / mask.sum().clamp_min(1) if mask is not None else ce.mean()
            total = total + self.ce_weight * ce
        if self.dice_weight:
            probs = logits.softmax(1)[:, 1:]
            onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1)[:, 1:].to(probs.dtype)
            total = total - self.dice_weight * soft_dice(probs, onehot, mask, self.batch_dice, self.smooth).mean()
        return total


def _labels_and_mask(target: torch.Tensor, ignore_label: int | None, dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(b, 1, ...) label values -> (b, ...) class indices with ignored voxels set to 0, and the keep mask."""
    target = target[:, 0].long()
    if ignore_label is None:
        return target, None
    keep = target != ignore_label
    return torch.where(keep, target, torch.zeros_like(target)), keep[:, None].to(dtype)


class DiceBCELoss(nn.Module):
    """Sigmoid Dice + binary cross-entropy for overlapping regions. Target: (b, k, *spatial) 0/1 (+ mask)."""

    def __init__(self, batch_dice: bool, use_ignore: bool = False, bce_weight: float = 1.0,
                 smooth: float = SMOOTH) -> None:
        super().__init__()
        self.batch_dice, self.use_ignore = batch_dice, use_ignore
        self.bce_weight, self.smooth = bce_weight, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mask = None
        if self.use_ignore:  # the last target channel marks voxels to train on
            mask, target = target[:, -1:].to(logits.dtype), target[:, :-1]
        target = target.to(logits.dtype)
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        if mask is not None:
            bce = (bce * mask).sum() / (mask.sum() * logits.shape[1]).clamp_min(1)
        else:
            bce = bce.mean()
        dice = soft_dice(logits.sigmoid(), target, mask, self.batch_dice, self.smooth).mean()
        return self.bce_weight * bce - dice


def labels_to_regions(seg: torch.Tensor, regions: Sequence[Sequence[int]], ignore_label: int | None = None):
    """(b, 1, ...) label values -> (b, k, ...) region masks (+ a "train here" channel with an ignore label)."""
    channels = [torch.isin(seg[:, 0], torch.as_tensor(list(r), device=seg.device)) for r in regions]
    if ignore_label is not None:
        channels.append(seg[:, 0] != ignore_label)
    return torch.stack(channels, 1).to(torch.uint8)


def deep_supervision_weights(count: int) -> list[float]:
    """1, 1/2, 1/4, ... for the outputs from highest resolution down; the lowest gets 0; normalised."""
    weights = np.array([1 / 2 ** i for i in range(count)])
    if count > 1:
        weights[-1] = 0
    return list(weights / weights.sum())


def deep_supervision_scales(strides: Sequence[Sequence[int]]) -> list[list[float]]:
    """The resolution of each decoder output relative to the patch (from the plans' strides)."""
    cumulative = np.cumprod(np.vstack(strides), axis=0)
    return [list(1 / c) for c in cumulative[:-1]]


def downsample_targets(seg: torch.Tensor, scales: Sequence[Sequence[float]]) -> list[torch.Tensor]:
    """The label map at each deep supervision scale (nearest neighbour, as nnU-Net)."""
    out = []
    for scale in scales:
        if all(s == 1 for s in scale):
            out.append(seg)
            continue
        size = [max(int(round(n * s)), 1) for n, s in zip(seg.shape[2:], scale)]
        out.append(F.interpolate(seg.float(), size=size, mode="nearest-exact").to(seg.dtype))
    return out


class DeepSupervisionLoss(nn.Module):
    """Weighted sum of a loss over the outputs at every scale (every term is computed, so DDP sees
    all parameters used even where the weight is 0)."""

    def __init__(self, loss: nn.Module, weights: Sequence[float]) -> None:
        super().__init__()
        self.loss, self.weights = loss, list(weights)

    def forward(self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> torch.Tensor:
        return sum(w * self.loss(o, t) for w, o, t in zip(self.weights, outputs, targets))


def named_loss(name: str, batch_dice: bool, region_based: bool, ignore_label: int | None) -> nn.Module:
    """The loss ``--loss`` names (see ``variants.LOSSES``), for label or region datasets."""
    smooth = 0.0 if name == "dice_ce_nosmooth" else SMOOTH
    if region_based:
        if name == "ce":
            raise MedSegError("The cross-entropy-only loss (nnUNetTrainerCELoss, --loss ce) trains labels, not "
                              "regions; use --loss dice_ce or dice for this region-based dataset.")
        return DiceBCELoss(batch_dice, use_ignore=ignore_label is not None,
                           bce_weight=0.0 if name == "dice" else 1.0, smooth=smooth)
    return DiceCELoss(batch_dice, ignore_label, dice_weight=0.0 if name == "ce" else 1.0,
                      ce_weight=0.0 if name == "dice" else 1.0, smooth=smooth)
