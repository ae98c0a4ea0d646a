"""The "stability test": a model against several references (annotators) of the same cases.

For each case and label we measure the model against every reference, and every pair of
references against each other. A model is "as consistent as the annotators" for a metric when
its mean score against the references is at least as good as the worst annotator's mean score
against the other annotators (each annotator scored like the model: against everybody else).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from ..errors import MedSegError
from .metrics import HIGHER_IS_BETTER, Region, case_metrics

STABILITY_METRICS = ("dice", "hd95", "asd")


def stability_rows(case: str, pred: np.ndarray, refs: Sequence[np.ndarray], ref_names: Sequence[str],
                   regions: Sequence[Region], spacing: Sequence[float]) -> tuple[list[dict], list[dict]]:
    """Rows of the model against each reference, and of each pair of references."""
    if len(refs) < 2:
        raise MedSegError("The stability test needs at least two references per case (e.g. two annotators).")
    model = [{"case": case, "reference": name, **row}
             for ref, name in zip(refs, ref_names) for row in case_metrics(pred, ref, regions, spacing)]
    pairs = [{"case": case, "ref_a": ref_names[i], "ref_b": ref_names[j], **row}
             for i, j in itertools.combinations(range(len(refs)), 2)
             for row in case_metrics(refs[i], refs[j], regions, spacing)]
    return model, pairs


def _mean(values) -> float:
    v = [x for x in values if not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(v)) if v else float("nan")


def _stats(values) -> dict:
    v = [x for x in values if not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"mean": float(np.mean(v)), "std": float(np.std(v)), "min": float(min(v)), "max": float(max(v))}


def per_case_spread(model_rows: Sequence[dict], pair_rows: Sequence[dict],
                    metrics: Sequence[str] = STABILITY_METRICS) -> list[dict]:
    """Per (case, label): each metric's spread across references and the inter-reference agreement."""
    out = []
    keys = list(dict.fromkeys((r["case"], r["label"]) for r in model_rows))
    for case, label in keys:
        mine = [r for r in model_rows if r["case"] == case and r["label"] == label]
        pairs = [r for r in pair_rows if r["case"] == case and r["label"] == label]
        row = {"case": case, "label": label}
        for m in metrics:
            s, p = _stats(r[m] for r in mine), _stats(r[m] for r in pairs)
            row.update({f"{m}_model_mean": s["mean"], f"{m}_model_std": s["std"], f"{m}_model_min": s["min"],
                        f"{m}_model_max": s["max"], f"{m}_inter_ref_mean": p["mean"], f"{m}_inter_ref_std": p["std"],
                        f"{m}_inter_ref_min": p["min"], f"{m}_inter_ref_max": p["max"]})
        out.append(row)
    return out


def summarize_stability(model_rows: Sequence[dict], pair_rows: Sequence[dict], ref_names: Sequence[str],
                        metrics: Sequence[str] = STABILITY_METRICS) -> dict[str, dict]:
    """Per label and metric: model vs references, inter-reference agreement, each annotator, verdict."""
    summary: dict[str, dict] = {}
    for label in dict.fromkeys(r["label"] for r in model_rows):
        mine = [r for r in model_rows if r["label"] == label]
        pairs = [r for r in pair_rows if r["label"] == label]
        cases = list(dict.fromkeys(r["case"] for r in mine))
        entry = {}
        for m in metrics:
            # average within a case first, so every case weighs the same
            model = _mean(_mean(r[m] for r in mine if r["case"] == c) for c in cases)
            spread = _mean(_stats(r[m] for r in mine if r["case"] == c)["std"] for c in cases)
            inter = _mean(_mean(r[m] for r in pairs if r["case"] == c) for c in cases)
            annotators = {name: _mean(_mean(r[m] for r in pairs if r["case"] == c and name in (r["ref_a"], r["ref_b"]))
                                      for c in cases) for name in ref_names}
            known = [v for v in annotators.values() if not math.isnan(v)]
            consistent = None
            if known and not math.isnan(model):
                worst = min(known) if HIGHER_IS_BETTER[m] else max(known)
                consistent = bool(model >= worst) if HIGHER_IS_BETTER[m] else bool(model <= worst)
            entry[m] = {"model_vs_references": model, "model_spread_across_references": spread,
                        "inter_reference": inter, "annotators_vs_others": annotators,
                        "as_consistent_as_annotators": consistent}
        summary[label] = entry
    return summary


def stability_table(summary: dict[str, dict], metric: str = "dice") -> tuple[list[str], list[list]]:
    header = ["label", f"{metric} model vs refs", "spread across refs", "inter-reference", "worst annotator",
              "as consistent as annotators"]
    rows = []
    for label, entry in summary.items():
        e = entry[metric]
        known = [v for v in e["annotators_vs_others"].values() if not math.isnan(v)]
        worst = (min(known) if HIGHER_IS_BETTER[metric] else max(known)) if known else float("nan")
        verdict = {True: "yes", False: "no", None: "-"}[e["as_consistent_as_annotators"]]
        rows.append([label, e["model_vs_references"], e["model_spread_across_references"], e["inter_reference"],
                     worst, verdict])
    return header, rows
