"""Choose the postprocessing nnU-Net's way: keep the largest connected component (first of all
foreground together, then per label or region) only where it strictly improves the mean Dice
over the cross-validation predictions. Writes ``postprocessing.json`` (nnU-Net's schema)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..fileio import write_json
from ..images import read_image
from ..inference.postprocessing import apply_postprocessing
from .metrics import dataset_regions
from .summary import SUMMARY, case_entry, json_safe, summarize_cases, write_summary

STEP = "remove_all_but_largest_component_from_segmentation"


def _mean_dice(entries: Sequence[dict], key: str | None = None) -> float:
    if key is None:
        return summarize_cases(entries, _regions_of(entries))["foreground_mean"]["Dice"]
    values = [e["metrics"][key]["Dice"] for e in entries]
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _regions_of(entries):
    return entries[0]["_regions"]


def _score(cases, regions) -> list[dict]:
    out = []
    for pred, ref, spacing in cases:
        entry = case_entry(pred, ref, spacing, regions)
        entry["_regions"] = regions
        out.append(entry)
    return out


def choose_postprocessing(folder: str | os.PathLike, dataset_json: dict,
                          pairs: Sequence[tuple[str, str]]) -> list[tuple[str, dict]]:
    """Try the steps on the (prediction file, reference file) pairs; write the accepted ones.

    Returns the accepted steps as (name, kwargs); also writes the postprocessed predictions'
    summary to ``postprocessed/summary.json`` for the record.
    """
    regions = dataset_regions(dataset_json)
    items = [_item(r) for r in regions]
    cases = []
    for pred_file, ref_file in pairs:
        ref = read_image(ref_file)
        cases.append((read_image(pred_file).array[0].astype(np.int16), ref.array[0].astype(np.int16), ref.spacing))
    baseline = _score(cases, regions)
    steps: list[tuple[str, dict]] = []
    current = baseline
    candidates = [(items if len(items) > 1 else items[0], None)] + [(item, r.name) for item, r in zip(items, regions)]
    for target, key in candidates:
        kwargs = {"labels_or_regions": target, "background_label": 0}
        trial_cases = [(apply_postprocessing(p, [(STEP, kwargs)]), r, s) for p, r, s in cases]
        trial = _score(trial_cases, regions)
        if _mean_dice(trial, key) > _mean_dice(current, key):  # strictly better, as nnU-Net requires
            steps.append((STEP, kwargs))
            cases, current = trial_cases, trial
    folder = Path(folder)
    write_json(folder / "postprocessing.json", json_safe({
        "postprocessing_fns": [name for name, _ in steps],
        "postprocessing_kwargs": [kw for _, kw in steps],
        "dice_before": _mean_dice(baseline), "dice_after": _mean_dice(current)}))
    for e in current:
        e.pop("_regions", None)
    write_summary(folder / "postprocessed" / SUMMARY, summarize_cases(current, regions))
    return steps


def _item(region):
    """nnU-Net's way to name a label (an int) or a region (a list of label values)."""
    return region.values[0] if not region.name.startswith("(") else list(region.values)
