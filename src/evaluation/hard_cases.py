"""Hard cases (a label scored below a threshold) and a splits file that trains on them."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..errors import MedSegError

SPLITS_SEED = 12345  # the seed nnU-Net uses for its 5-fold split


def find_hard_cases(rows: Sequence[dict], threshold: float, metric: str = "dice") -> list[dict]:
    """Cases where any label's ``metric`` is below ``threshold`` (NaN, i.e. both empty, never counts).

    Returns one entry per hard case, worst first: case, its worst label and value, and every
    label below the threshold.
    """
    by_case: dict[str, list[dict]] = {}
    for r in rows:
        value = r[metric]
        if not (isinstance(value, float) and math.isnan(value)) and value < threshold:
            by_case.setdefault(r["case"], []).append(r)
    hard = []
    for case, bad in by_case.items():
        worst = min(bad, key=lambda r: r[metric])
        hard.append({"case": case, "worst_label": worst["label"], metric: worst[metric],
                     "labels_below": sorted({r["label"] for r in bad})})
    return sorted(hard, key=lambda h: (h[metric], h["case"]))


def make_folds(cases: Sequence[str], num_folds: int = 5, seed: int = SPLITS_SEED) -> list[dict[str, list[str]]]:
    """A k-fold split by case in nnU-Net's ``splits_final.json`` format (shuffled with a fixed seed)."""
    cases = sorted(cases)
    if len(cases) < 2:
        raise MedSegError(f"Cannot split {len(cases)} case(s) into folds; at least 2 are needed.")
    num_folds = min(num_folds, len(cases))
    order = np.random.RandomState(seed).permutation(len(cases))
    folds = []
    for val_idx in np.array_split(order, num_folds):
        val = sorted(cases[i] for i in val_idx)
        folds.append({"train": [c for c in cases if c not in val], "val": val})
    return folds


def check_splits(splits: Any, source: str) -> list[dict[str, list[str]]]:
    if not isinstance(splits, list) or not splits or not all(
            isinstance(f, dict) and isinstance(f.get("train"), list) and isinstance(f.get("val"), list) for f in splits):
        raise MedSegError(f"{source} is not an nnU-Net splits file: expected a list of "
                          '{"train": [...], "val": [...]} entries, one per fold.')
    return splits


def splits_with_hard_cases_in_training(hard: Sequence[str], cases: Sequence[str] | None = None,
                                       splits: list | None = None, num_folds: int = 5) -> list[dict[str, list[str]]]:
    """Move the hard cases into every fold's training set (and out of every validation set).

    With ``splits`` (an existing ``splits_final.json``) those folds are kept otherwise; without,
    folds are made from the other ``cases`` and the hard cases are added to every training set.
    """
    hard = list(dict.fromkeys(hard))
    if splits is None:
        easy = [c for c in (cases or []) if c not in set(hard)]
        folds = make_folds(easy, num_folds)
    else:
        folds = [{"train": list(f["train"]), "val": list(f["val"])} for f in check_splits(splits, "The splits")]
    for fold in folds:
        fold["val"] = [c for c in fold["val"] if c not in set(hard)]
        fold["train"] = list(dict.fromkeys(list(fold["train"]) + hard))
    return folds
