"""Pictures of an evaluation: box plots per label and a per-case bar chart (PNG, matplotlib)."""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import MedSegError
from ..fileio import atomic_path
from .summary import case_means


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise MedSegError("Pictures need matplotlib: pip install 'ChimeraX-MedSeg[plots]' "
                          "(or pip install matplotlib), or leave out --plots.") from exc
    matplotlib.use("Agg")  # files only; works without a display
    import matplotlib.pyplot as plt
    return plt


def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path


def plot_boxplots(rows: Sequence[dict], path: str | os.PathLike, metrics: Sequence[str] = ("dice", "hd95"),
                  other_rows: Sequence[dict] | None = None, names: Sequence[str] = ("A", "B")) -> Path:
    """One panel per metric, one box per label (two boxes side by side with ``other_rows``)."""
    plt = _pyplot()
    labels = list(dict.fromkeys(r["label"] for r in rows))
    width = max(6.0, 0.35 * len(labels) * (2 if other_rows else 1) + 2)
    fig, axes = plt.subplots(len(metrics), 1, figsize=(width, 3.2 * len(metrics)), squeeze=False)
    sets = [(rows, names[0])] + ([(other_rows, names[1])] if other_rows else [])
    for ax, metric in zip(axes[:, 0], metrics):
        step = 1.0 / (len(sets) + 1)
        for k, (data, name) in enumerate(sets):
            values = [_finite(r[metric] for r in data if r["label"] == label) for label in labels]
            positions = np.arange(len(labels)) + (k - (len(sets) - 1) / 2) * step
            box = ax.boxplot(values, positions=positions, widths=step * 0.8, patch_artist=True, showfliers=True)
            for patch in box["boxes"]:
                patch.set_facecolor(f"C{k}")
                patch.set_alpha(0.6)
            if other_rows:
                ax.plot([], [], color=f"C{k}", linewidth=8, alpha=0.6, label=name)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=60 if len(labels) > 6 else 0, ha="right" if len(labels) > 6 else "center",
                           fontsize=8)
        ax.set_ylabel(metric + (" (mm)" if metric in ("hd95", "hd", "asd") else ""))
        if metric in ("dice", "iou"):
            ax.set_ylim(-0.02, 1.02)
        ax.grid(axis="y", alpha=0.3)
        if other_rows:
            ax.legend(loc="best", fontsize=8)
    axes[0, 0].set_title("Per-label distribution over cases")
    fig.tight_layout()
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_per_case(rows: Sequence[dict], path: str | os.PathLike, metric: str = "dice",
                  threshold: float | None = None, other_rows: Sequence[dict] | None = None,
                  names: Sequence[str] = ("A", "B")) -> Path:
    """A bar per case: its mean ``metric`` over labels (two bars per case with ``other_rows``)."""
    plt = _pyplot()
    means = case_means(rows, metric)
    cases = list(means)
    sets = [(means, names[0])] + ([(case_means(other_rows, metric), names[1])] if other_rows else [])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(cases) * len(sets) + 2), 3.6))
    step = 0.8 / len(sets)
    for k, (data, name) in enumerate(sets):
        x = np.arange(len(cases)) + (k - (len(sets) - 1) / 2) * step
        ax.bar(x, [data.get(c, float("nan")) for c in cases], width=step, color=f"C{k}",
               label=name if other_rows else None)
    if threshold is not None:
        ax.axhline(threshold, color="crimson", linestyle="--", linewidth=1,
                   label=f"hard: any label below {threshold:g}")
    ax.set_xticks(range(len(cases)))
    crowded = len(cases) > 6
    ax.set_xticklabels(cases, rotation=60 if crowded else 0, ha="right" if crowded else "center", fontsize=8)
    ax.set_ylabel(f"mean {metric} over labels")
    if metric in ("dice", "iou"):
        ax.set_ylim(0, 1.02)
    ax.set_title("Per-case score")
    ax.grid(axis="y", alpha=0.3)
    if other_rows or threshold is not None:
        ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)
