"""Reads the training log as an expert would and says in plain words what looks wrong."""
from __future__ import annotations

import math
from collections.abc import Sequence

from ..errors import MedSegError


class TrainingDiverged(MedSegError):
    """The loss became NaN or infinite; training cannot recover and stops."""


def check_loss(value: float, epoch: int, what: str = "training loss") -> None:
    if not math.isfinite(value):
        raise TrainingDiverged(
            f"The {what} became {value} in epoch {epoch}; training stopped. Usual causes: NaN/Inf voxels in an "
            "image, a learning rate too high for a custom trainer, or broken labels. Run `medseg dataset verify` "
            "and, with a custom trainer, lower its learning rate. The last checkpoint is kept.")


def advise(records: Sequence[dict], class_names: Sequence[str], window: int = 20) -> list[str]:
    """Warnings for the log so far (each a sentence a student can act on); empty if all looks fine.

    ``window`` is how many recent epochs a trend must hold for before it is reported.
    """
    warnings: list[str] = []
    if len(records) < window:
        return warnings
    recent = records[-window:]
    warnings += _dead_classes(recent, class_names, window)
    warnings += _overfitting(recent, window)
    warnings += _frozen_lr(recent, window)
    return warnings


def _dead_classes(recent: Sequence[dict], class_names: Sequence[str], window: int) -> list[str]:
    out = []
    for i, name in enumerate(class_names):
        values = [r["pseudo_dice"][i] for r in recent if r.get("pseudo_dice") and len(r["pseudo_dice"]) > i]
        if len(values) == len(recent) and all(not (v > 0) for v in values):  # 0 or NaN throughout
            out.append(f"The pseudo-Dice of '{name}' has stayed at 0 for {window} epochs: the network is not "
                       "learning this class. Check that the label files really contain it, that label values match "
                       "dataset.json, and that the input channels are in the order dataset.json names them.")
    return out


def _slope(values: Sequence[float]) -> float:
    n = len(values)
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den if den else 0.0


def _finite_values(recent: Sequence[dict], key: str) -> list[float] | None:
    """``key`` of every record, or None when a record lacks it or it is NaN/infinite."""
    values = [r.get(key) for r in recent]
    if any(v is None or not math.isfinite(v) for v in values):
        return None
    return [v for v in values if v is not None]


def _overfitting(recent: Sequence[dict], window: int) -> list[str]:
    train = _finite_values(recent, "train_loss")
    val = _finite_values(recent, "val_loss")
    if train is None or val is None:
        return []
    scale = max(abs(sum(val) / len(val)), 1e-3)
    if _slope(train) < 0 and _slope(val) * window > 0.05 * scale:
        return [f"Over the last {window} epochs the validation loss rose while the training loss fell: the "
                "network is memorising the training cases (overfitting). More training cases, stronger "
                "augmentation or fewer epochs help; the final checkpoint may be worse than checkpoint_best.pth."]
    return []


def _frozen_lr(recent: Sequence[dict], window: int) -> list[str]:
    lrs = [r["lr"] for r in recent if r.get("lr") is not None]
    if len(lrs) == len(recent) and max(lrs) == min(lrs):
        return [f"The learning rate has not changed for {window} epochs ({lrs[0]:.3g}). nnU-Net's schedule lowers "
                "it every epoch; if you wrote a custom trainer, check that its schedule is applied."]
    return []
