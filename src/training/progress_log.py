"""The training log: one record per epoch, as JSON and text, and the ``progress.png`` plot."""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from ..fileio import atomic_path, write_json


class TrainingLog:
    """Per-epoch records: epoch, train_loss, val_loss, pseudo_dice (per class/region), mean_fg_dice,
    ema_fg_dice, lr, epoch_seconds, iterations_per_second."""

    def __init__(self, class_names: Sequence[str], records: list[dict] | None = None) -> None:
        self.class_names = list(class_names)
        self.records: list[dict] = list(records or [])

    def add(self, record: dict) -> None:
        self.records.append(record)

    def truncate(self, epochs: int) -> None:
        """Keep the first ``epochs`` records (after resuming from a checkpoint at that epoch)."""
        self.records = self.records[:epochs]

    def series(self, key: str) -> list:
        return [r.get(key) for r in self.records]

    def to_nnunet_logging(self) -> dict:
        """The ``logging`` entry of an nnU-Net checkpoint (lists per quantity)."""
        return {"mean_fg_dice": self.series("mean_fg_dice"), "ema_fg_dice": self.series("ema_fg_dice"),
                "dice_per_class_or_region": self.series("pseudo_dice"), "train_losses": self.series("train_loss"),
                "val_losses": self.series("val_loss"), "lrs": self.series("lr"),
                "epoch_start_timestamps": self.series("start_time"), "epoch_end_timestamps": self.series("end_time")}

    @classmethod
    def from_nnunet_logging(cls, class_names: Sequence[str], logging: dict) -> TrainingLog:
        keys = {"mean_fg_dice": "mean_fg_dice", "ema_fg_dice": "ema_fg_dice", "dice_per_class_or_region": "pseudo_dice",
                "train_losses": "train_loss", "val_losses": "val_loss", "lrs": "lr",
                "epoch_start_timestamps": "start_time", "epoch_end_timestamps": "end_time"}
        count = len(logging.get("train_losses", []))
        records = []
        for i in range(count):
            record = {"epoch": i}
            for theirs, ours in keys.items():
                values = logging.get(theirs) or []
                if i < len(values):
                    record[ours] = values[i]
            records.append(record)
        return cls(class_names, records)

    def format_line(self, record: dict) -> str:
        dice = ", ".join(f"{n} {_fmt(d)}" for n, d in zip(self.class_names, record.get("pseudo_dice") or []))
        return (f"epoch {record['epoch']}: train loss {_fmt(record.get('train_loss'))}, "
                f"val loss {_fmt(record.get('val_loss'))}, pseudo-Dice [{dice}], lr {record.get('lr', 0):.3g}, "
                f"{record.get('epoch_seconds', 0):.1f} s ({record.get('iterations_per_second', 0):.2f} it/s)")

    def write(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        write_json(folder / "training_log.json", {"class_names": self.class_names, "epochs": self.records})
        with atomic_path(folder / "training_log.txt") as tmp:
            tmp.write_text("".join(self.format_line(r) + "\n" for r in self.records))


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def plot_progress(log: TrainingLog, path: str | os.PathLike) -> Path | None:
    """Three panels a student can read: losses, pseudo-Dice per class (with its moving average), LR.

    Returns None (and writes nothing) when matplotlib is not installed.
    """
    try:
        import matplotlib
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    epochs = log.series("epoch")
    fig, axes = plt.subplots(3, 1, figsize=(10, 11), sharex=True)
    ax = axes[0]
    ax.plot(epochs, log.series("train_loss"), color="tab:blue", label="training loss")
    ax.plot(epochs, log.series("val_loss"), color="tab:red", label="validation loss")
    ax.set_ylabel("loss (lower is better)")
    ax.set_title("Losses: both should fall; validation rising while training falls means overfitting")
    ax.legend(loc="upper right")
    ax = axes[1]
    per_class = log.series("pseudo_dice")
    for i, name in enumerate(log.class_names):
        ax.plot(epochs, [d[i] if d else None for d in per_class], linestyle=":", label=f"{name}")
    ax.plot(epochs, log.series("ema_fg_dice"), color="black", linewidth=2, label="mean (moving average)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("pseudo-Dice (higher is better)")
    ax.set_title("Pseudo-Dice on validation patches (an estimate; the real Dice comes from full-image validation)")
    ax.legend(loc="lower right")
    ax = axes[2]
    ax.plot(epochs, log.series("lr"), color="tab:green")
    ax.set_ylabel("learning rate")
    ax.set_xlabel("epoch")
    ax.set_title("Learning rate (polynomial decay to 0)")
    from matplotlib.ticker import MaxNLocator
    for a in axes:
        a.grid(alpha=0.3)
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return path
