"""The work behind ``medseg evaluate PRED_DIR REF_DIR [REF_DIR ...]``: per-case metrics, summaries, comparison,
hard cases, stability across references and pictures."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import MedSegError
from ..fileio import read_json, write_json
from .compare import compare_models
from .evaluate import CONVENTIONS, Evaluation, evaluate_folders, regions_from_dataset_json
from .hard_cases import find_hard_cases, splits_with_hard_cases_in_training
from .metrics import METRIC_NAMES, parse_regions
from .plots import _pyplot, plot_boxplots, plot_per_case
from .stability import per_case_spread, stability_table, summarize_stability
from .summary import (
    format_table,
    per_case_table,
    summarize,
    summary_rows,
    summary_table,
    write_json_safe,
    write_rows_csv,
)

ROW_COLUMNS = ["case", "reference", "label", *METRIC_NAMES, "resampled", "missing_prediction"]


def run(args: argparse.Namespace) -> int:
    if args.labels and args.dataset_json:
        raise MedSegError("Give either --labels or --dataset-json, not both.")
    if args.splits and args.hard_below is None:
        raise MedSegError("--splits is used with --hard-below (it says which splits file to put the hard cases in).")
    if args.num_folds is not None and (args.hard_below is None or args.splits or args.num_folds < 2):
        raise MedSegError("--num-folds K (at least 2) goes with --hard-below, without --splits: it is the number of "
                          "folds made of the cases that are not hard.")
    regions = parse_regions(args.labels) if args.labels else (
        regions_from_dataset_json(args.dataset_json) if args.dataset_json else None)
    if args.plots:
        _pyplot()  # fail before the work, not after it, when matplotlib is missing
    out = Path(args.output) if args.output else Path(args.pred_dir) / "evaluation"
    ev = evaluate_folders(args.pred_dir, args.ref_dirs, regions, other_pred_dir=args.compare, resample=args.resample,
                          missing_as_empty=args.missing_as_empty, ignore_unlisted=args.ignore_unlisted)
    data: dict = {}
    report = write_report(ev, out, args, data)
    for note in ev.notes:
        print(f"note: {note}")
    print(report)
    print(f"\nResults written to {out}/")
    unsplit = data.get("hard_cases", {}).get("splits_error")
    if unsplit:
        # --hard-below asked for a splits file; a training run reading it must not start from nothing (or a stale one)
        raise MedSegError(f"No splits_final.json written: {unsplit} Lower --hard-below, or give --splits.")
    return 0


def write_report(ev: Evaluation, out: Path, args: argparse.Namespace, data: dict | None = None) -> str:
    """Write every output file; return the text to print. ``data`` gets what evaluation.json holds."""
    summary = summarize(ev.rows)
    text = ["Per case:", per_case_table(ev.rows), "", "Per label (over cases):", summary_table(summary)]
    data = {} if data is None else data
    data.update({"conventions": CONVENTIONS, "prediction_dir": str(args.pred_dir),
                 "reference_dirs": [str(d) for d in args.ref_dirs], "references": ev.reference_names,
                 "labels": ev.labels, "notes": ev.notes, "summary": summary, "per_case": ev.rows})
    write_rows_csv(out / "per_case.csv", ev.rows, ROW_COLUMNS)
    write_rows_csv(out / "summary.csv", summary_rows(summary))
    if ev.other_rows is not None:
        text += ["", _comparison(ev, out, args, data)]
    if args.hard_below is not None:
        text += ["", _hard_cases(ev, out, args, data)]
    if len(ev.reference_names) > 1:
        text += ["", _stability(ev, out, data)]
    if args.plots:
        text += ["", _plots(ev, out, args)]
    write_json_safe(out / "evaluation.json", data)
    return "\n".join(text)


def _comparison(ev: Evaluation, out: Path, args, data: dict) -> str:
    diffs, tests = compare_models(ev.first_reference_rows(), ev.first_reference_rows(other=True))
    write_rows_csv(out / "comparison.csv", diffs)
    data["comparison"] = {"a": str(args.pred_dir), "b": str(args.compare), "reference": ev.reference_names[0],
                          "test": "two-sided Wilcoxon signed-rank on per-case differences A - B", "per_label": tests,
                          "per_case": diffs}
    rows = []
    for label, by_metric in tests.items():
        for metric in ("dice", "hd95"):
            t = by_metric[metric]
            rows.append([label, metric, t["a"]["mean"], t["b"]["mean"], t["median_diff"], t["n"], t["p_value"]])
    per_case = [[d["case"], d["label"], d["dice_a"], d["dice_b"], d["hd95_a"], d["hd95_b"]] for d in diffs]
    return (f"Comparison: A = {args.pred_dir}, B = {args.compare} (against {ev.reference_names[0]})\n"
            + format_table(["case", "label", "dice A", "dice B", "hd95 A", "hd95 B"], per_case) + "\n\n"
            + format_table(["label", "metric", "mean A", "mean B", "median A-B", "cases", "Wilcoxon p"], rows))


def _hard_cases(ev: Evaluation, out: Path, args, data: dict) -> str:
    rows = ev.first_reference_rows()
    hard = find_hard_cases(rows, args.hard_below)
    existing = read_json(args.splits) if args.splits else None
    cases = list(dict.fromkeys(r["case"] for r in rows))
    data["hard_cases"] = {"threshold": args.hard_below, "metric": "dice", "cases": hard}
    write_rows_csv(out / "hard_cases.csv", [{**h, "labels_below": " ".join(h["labels_below"])} for h in hard],
                   ["case", "worst_label", "dice", "labels_below"])
    text = f"Hard cases (a label's Dice below {args.hard_below:g}): {len(hard)} of {len(cases)}\n"
    if hard:
        text += format_table(["case", "worst label", "dice", "labels below"],
                             [[h["case"], h["worst_label"], h["dice"], " ".join(h["labels_below"])]
                              for h in hard]) + "\n"
    try:
        splits = splits_with_hard_cases_in_training([h["case"] for h in hard], cases, existing,
                                                    args.num_folds or 5)
    except MedSegError as exc:
        (out / "splits_final.json").unlink(missing_ok=True)  # one from an earlier run would no longer be true
        data["hard_cases"]["splits_error"] = str(exc)
        return text + f"No splits file written: {exc}"
    write_json(out / "splits_final.json", splits)
    return text + f"splits_final.json ({len(splits)} folds) puts them in every fold's training set."


def _stability(ev: Evaluation, out: Path, data: dict) -> str:
    model = [r for r in ev.rows]
    summary = summarize_stability(model, ev.pair_rows, ev.reference_names)
    spread = per_case_spread(model, ev.pair_rows)
    write_rows_csv(out / "stability.csv", spread)
    write_rows_csv(out / "inter_reference.csv", ev.pair_rows, ["case", "ref_a", "ref_b", "label", *METRIC_NAMES])
    data["stability"] = {"references": ev.reference_names, "summary": summary, "per_case": spread,
                         "inter_reference": ev.pair_rows}
    header, rows = stability_table(summary, "dice")
    return (f"Stability across {len(ev.reference_names)} references ({', '.join(ev.reference_names)}):\n"
            + format_table(header, rows))


def _plots(ev: Evaluation, out: Path, args) -> str:
    rows = ev.first_reference_rows()
    other = ev.first_reference_rows(other=True) if ev.other_rows is not None else None
    names = (Path(args.pred_dir).name or "A", Path(args.compare).name if args.compare else "B")
    box = plot_boxplots(rows, out / "boxplot.png", other_rows=other, names=names)
    bars = plot_per_case(rows, out / "per_case.png", threshold=args.hard_below, other_rows=other, names=names)
    return f"Pictures: {box.name}, {bars.name}"
