"""Two models side by side on the same cases: per-case differences and a paired test."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .summary import case_means, describe

COMPARED_METRICS = ("dice", "hd95", "asd")
ALL_LABELS = "all labels (case mean)"


def paired_differences(rows_a: Sequence[dict], rows_b: Sequence[dict],
                       metrics: Sequence[str] = COMPARED_METRICS) -> list[dict]:
    """One row per (case, label) present in both: each metric for A and B and A - B."""
    b_by_key = {(r["case"], r["label"]): r for r in rows_b}
    out = []
    for a in rows_a:
        b = b_by_key.get((a["case"], a["label"]))
        if b is None:
            continue
        row = {"case": a["case"], "label": a["label"]}
        for m in metrics:
            row[f"{m}_a"], row[f"{m}_b"] = a[m], b[m]
            row[f"{m}_diff"] = a[m] - b[m]
        out.append(row)
    return out


def wilcoxon_signed_rank(differences: Sequence[float]) -> dict:
    """Two-sided Wilcoxon signed-rank test of paired differences (NaN pairs left out).

    Zero differences are dropped (Wilcoxon's method). With no non-zero difference the models
    are indistinguishable on these cases: p = 1.
    """
    from scipy import stats
    d = np.asarray([x for x in differences if not math.isnan(x)], dtype=np.float64)
    nonzero = int(np.count_nonzero(d))
    result = {"n": int(d.size), "n_nonzero": nonzero, "median_diff": float(np.median(d)) if d.size else float("nan"),
              "mean_diff": float(d.mean()) if d.size else float("nan"), "statistic": float("nan"),
              "p_value": float("nan")}
    if d.size == 0:
        return result
    if nonzero == 0:
        result["p_value"] = 1.0
        return result
    test = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    result["statistic"], result["p_value"] = float(test.statistic), float(test.pvalue)
    return result


def compare_models(rows_a: Sequence[dict], rows_b: Sequence[dict],
                   metrics: Sequence[str] = COMPARED_METRICS) -> tuple[list[dict], dict]:
    """Per-case differences and, per label and metric, a Wilcoxon signed-rank test of A vs B.

    The extra label ``ALL_LABELS`` tests the per-case mean over labels.
    """
    diffs = paired_differences(rows_a, rows_b, metrics)
    labels = list(dict.fromkeys(r["label"] for r in diffs))
    tests: dict[str, dict] = {}
    for label in labels:
        mine = [r for r in diffs if r["label"] == label]
        tests[label] = {m: {**wilcoxon_signed_rank([r[f"{m}_diff"] for r in mine]),
                            "a": describe(r[f"{m}_a"] for r in mine), "b": describe(r[f"{m}_b"] for r in mine)}
                        for m in metrics}
    if len(labels) > 1:
        tests[ALL_LABELS] = {}
        for m in metrics:
            mean_a, mean_b = case_means(rows_a, m), case_means(rows_b, m)
            cases = [c for c in mean_a if c in mean_b]
            tests[ALL_LABELS][m] = {**wilcoxon_signed_rank([mean_a[c] - mean_b[c] for c in cases]),
                                    "a": describe(mean_a[c] for c in cases), "b": describe(mean_b[c] for c in cases)}
    return diffs, tests
