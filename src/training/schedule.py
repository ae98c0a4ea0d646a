"""Learning-rate schedules: nnU-Net's polynomial decay."""
from __future__ import annotations

POLY_EXPONENT = 0.9


def poly_lr(initial_lr: float, epoch: int, epochs: int, exponent: float = POLY_EXPONENT) -> float:
    """``initial * (1 - epoch / epochs) ** 0.9``: set at the start of each epoch (epoch counts from 0)."""
    return initial_lr * (1 - epoch / epochs) ** exponent


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
