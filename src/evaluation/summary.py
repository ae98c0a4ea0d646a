"""Summaries of per-case rows (mean, median, spread per label), tables and CSV/JSON output."""
from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..fileio import atomic_path, write_json
from .metrics import Region, case_metrics

SUMMARY_METRICS = ("dice", "iou", "hd95", "hd", "asd", "volume_diff_ml", "volume_diff_rel")
STATS = ("mean", "median", "std", "q1", "q3", "min", "max", "n")


def describe(values: Iterable[float]) -> dict[str, float]:
    """Mean, median, standard deviation, quartiles, range and count of the non-NaN values."""
    v = np.asarray([x for x in values if x is not None and not _isnan(x)], dtype=np.float64)
    if v.size == 0:
        return {s: (0 if s == "n" else float("nan")) for s in STATS}
    q1, median, q3 = np.percentile(v, [25, 50, 75])
    return {"mean": float(v.mean()), "median": float(median), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "q1": float(q1), "q3": float(q3), "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def summarize(rows: Sequence[dict], metrics: Sequence[str] = SUMMARY_METRICS) -> dict[str, dict]:
    """Per label: statistics of each metric over the rows, plus counts of the special cases.

    The extra entry ``"mean of labels"`` averages the per-label means (nnU-Net's foreground mean).
    """
    labels = list(dict.fromkeys(r["label"] for r in rows))
    summary: dict[str, dict] = {}
    for label in labels:
        mine = [r for r in rows if r["label"] == label]
        entry: dict[str, Any] = {m: describe(r[m] for r in mine) for m in metrics}
        entry["cases"] = len(mine)
        entry["both_empty"] = sum(1 for r in mine if _isnan(r["dice"]))
        entry["missed"] = sum(bool(r["missed"]) for r in mine)
        entry["false_alarm"] = sum(bool(r["false_alarm"]) for r in mine)
        entry["lesions_ref"] = sum(int(r["lesions_ref"]) for r in mine)
        entry["lesions_missed"] = sum(int(r["lesions_missed"]) for r in mine)
        entry["lesions_false"] = sum(int(r["lesions_false"]) for r in mine)
        summary[label] = entry
    if len(labels) > 1:
        summary["mean of labels"] = {m: {"mean": _nanmean(summary[name][m]["mean"] for name in labels)}
                                     for m in metrics}
    return summary


def case_means(rows: Sequence[dict], metric: str = "dice") -> dict[str, float]:
    """Per case: the mean of ``metric`` over its labels (NaN labels left out)."""
    cases: dict[str, list] = {}
    for r in rows:
        cases.setdefault(r["case"], []).append(r[metric])
    return {case: _nanmean(values) for case, values in cases.items()}


def _isnan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _nanmean(values: Iterable[float]) -> float:
    v = [x for x in values if x is not None and not _isnan(x)]
    return float(np.mean(v)) if v else float("nan")


def json_safe(value: Any) -> Any:
    """NaN and infinity become null (JSON has no NaN); numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_rows_csv(path: str | os.PathLike, rows: Sequence[dict], columns: Sequence[str] | None = None) -> None:
    """Write rows as CSV atomically; NaN is written as an empty cell."""
    columns = list(columns or (rows[0].keys() if rows else []))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(row.get(k)) for k in columns})
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())


def summary_rows(summary: dict[str, dict]) -> list[dict]:
    """The summary flattened to one row per (label, metric) for CSV."""
    rows = []
    for label, entry in summary.items():
        for metric, stats in entry.items():
            if isinstance(stats, dict):
                rows.append({"label": label, "metric": metric, **stats})
    return rows


def _csv_cell(value):
    if value is None or _isnan(value):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def write_json_safe(path: str | os.PathLike, data: Any) -> None:
    write_json(path, json_safe(data))


def format_number(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if _isnan(value):
        return "NaN"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else ""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{value:.{digits}f}" if abs(value) < 1000 else f"{value:.1f}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with aligned columns (text left, numbers right)."""
    cells = [[str(h) for h in header]] + [[c if isinstance(c, str) else format_number(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = ([all(not isinstance(row[i], str) for row in rows) for i in range(len(header))] if rows
               else [False] * len(header))
    lines = []
    for r in cells:
        lines.append("  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric)).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_table(summary: dict[str, dict], metrics: Sequence[str] = ("dice", "hd95", "asd")) -> str:
    """Per label: mean, median and spread (std, interquartile range) of the main metrics."""
    header = ["label"]
    for m in metrics:
        header += [f"{m} mean", f"{m} median", f"{m} std", f"{m} IQR"]
    header += ["missed", "false alarms", "both empty"]
    rows = []
    for label, entry in summary.items():
        row: list[Any] = [label]
        for m in metrics:
            s = entry[m]
            iqr = s["q3"] - s["q1"] if "q1" in s else None
            row += [s.get("mean"), s.get("median"), s.get("std"), iqr]
        row += [entry.get("missed", ""), entry.get("false_alarm", ""), entry.get("both_empty", "")]
        rows.append(row)
    return format_table(header, rows)


def per_case_table(rows: Sequence[dict], max_label_columns: int = 6) -> str:
    """One line per case (and reference): Dice per label when few labels, else means and the worst label."""
    labels = list(dict.fromkeys(r["label"] for r in rows))
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["case"], r.get("reference", "")), []).append(r)
    with_ref = len({key[1] for key in groups}) > 1
    if len(labels) <= max_label_columns:
        header = ["case"] + (["reference"] if with_ref else []) + [f"dice {label}" for label in labels] + \
                 [f"hd95 {label}" for label in labels]
        table = []
        for (case, ref), mine in groups.items():
            by_label = {r["label"]: r for r in mine}
            table.append([case] + ([ref] if with_ref else []) +
                         [by_label[label]["dice"] if label in by_label else float("nan") for label in labels] +
                         [by_label[label]["hd95"] if label in by_label else float("nan") for label in labels])
        return format_table(header, table)
    header = ["case"] + (["reference"] if with_ref else []) + ["mean dice", "mean hd95", "worst label", "its dice",
                                                               "missed labels"]
    table = []
    for (case, ref), mine in groups.items():
        scored = [r for r in mine if not _isnan(r["dice"])]
        worst = min(scored, key=lambda r: r["dice"]) if scored else None
        table.append([case] + ([ref] if with_ref else []) + [
            _nanmean(r["dice"] for r in mine), _nanmean(r["hd95"] for r in mine),
            worst["label"] if worst else "-", worst["dice"] if worst else float("nan"),
            ",".join(r["label"] for r in mine if r["missed"]) or "-"])
    return format_table(header, table)


# --- nnU-Net's summary.json -------------------------------------------------------------------

SUMMARY = "summary.json"


def case_entry(pred: np.ndarray, ref: np.ndarray, spacing, regions: Sequence[Region],
               prediction_file: str = "", reference_file: str = "") -> dict:
    rows = case_metrics(pred, ref, regions, spacing)
    metrics = {r["label"]: {"Dice": r["dice"], "IoU": r["iou"], "HD95": r["hd95"], "TP": r["tp"], "FP": r["fp"],
                            "FN": r["fn"], "n_pred": r["tp"] + r["fp"], "n_ref": r["tp"] + r["fn"]} for r in rows}
    return {"metrics": metrics, "prediction_file": prediction_file, "reference_file": reference_file}


def summarize_cases(entries: Sequence[dict], regions: Sequence[Region]) -> dict:
    """nnU-Net's summary: per-case metrics, the mean per label/region, and the mean over them."""
    mean: dict[str, dict[str, float]] = {}
    for region in regions:
        mean[region.name] = {}
        for metric in ("Dice", "IoU", "HD95", "TP", "FP", "FN", "n_pred", "n_ref"):
            values = [e["metrics"][region.name][metric] for e in entries]
            finite = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
            mean[region.name][metric] = float(np.mean(finite)) if finite else float("nan")
    foreground = {}
    for metric in ("Dice", "IoU", "HD95"):
        values = [m[metric] for m in mean.values() if not math.isnan(m[metric])]
        foreground[metric] = float(np.mean(values)) if values else float("nan")
    return {"metric_per_case": list(entries), "mean": mean, "foreground_mean": foreground}


def write_summary(path: str | os.PathLike, summary: dict) -> None:
    write_json(path, json_safe(summary))
