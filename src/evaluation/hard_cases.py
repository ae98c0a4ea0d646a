"""Hard cases (a label scored below a threshold) and a splits file that trains on them."""
from __future__ import annotations

import math
from collections.abc import Sequence

from ..datasets.splits import check_splits, make_splits


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


def splits_with_hard_cases_in_training(hard: Sequence[str], cases: Sequence[str] | None = None,
                                       splits: list | None = None, num_folds: int = 5) -> list[dict[str, list[str]]]:
    """Move the hard cases into every fold's training set (and out of every validation set).

    With ``splits`` (an existing ``splits_final.json``) those folds are kept otherwise; without,
    folds are made from the other ``cases`` and the hard cases are added to every training set.
    """
    hard = list(dict.fromkeys(hard))
    if splits is None:
        easy = [c for c in (cases or []) if c not in set(hard)]
        folds = make_splits(easy, num_folds)
    else:
        folds = [{"train": list(f["train"]), "val": list(f["val"])} for f in check_splits(splits, None, "The splits")]
    for fold in folds:
        fold["val"] = [c for c in fold["val"] if c not in set(hard)]
        fold["train"] = list(dict.fromkeys(list(fold["train"]) + hard))
    return folds
