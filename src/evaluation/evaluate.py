"""Evaluate a folder of predictions against one or more folders of reference label maps."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import MedSegError
from ..fileio import read_json
from .casefiles import LabelMap, describe_grid, onto_reference_grid, pair_cases, same_grid
from .metrics import Region, case_metrics, dataset_regions, label_values, regions_from_values
from .stability import stability_rows

CONVENTIONS = {
    "dice_both_empty": "NaN (left out of means; counted as 'both_empty')",
    "distances_both_empty": "NaN (left out of means)",
    "distances_one_empty": "the image diagonal in mm (the worst possible distance on that grid)",
    "dice_one_empty": 0.0,
    "hd95": "max of the two directed 95th percentiles of surface distances, mm",
    "asd": "mean of all surface distances in both directions, mm",
    "surface": "mask voxels with a face neighbour outside the mask",
    "lesions": "26-connected components; a reference lesion is missed when no voxel of it is predicted",
    "json_nan": "NaN is written as null",
}


@dataclass
class Evaluation:
    """Everything measured: rows are one (case, reference, label) each."""

    rows: list[dict]
    labels: list[str]
    reference_names: list[str]
    notes: list[str] = field(default_factory=list)
    other_rows: list[dict] | None = None
    pair_rows: list[dict] = field(default_factory=list)  # reference vs reference (stability)

    def first_reference_rows(self, other: bool = False) -> list[dict]:
        rows = self.other_rows if other else self.rows
        return [r for r in rows or [] if r["reference"] == self.reference_names[0]]


def regions_from_dataset_json(path: str | os.PathLike) -> list[Region]:
    """Labels (and regions) named in an nnU-Net ``dataset.json`` file, by their names."""
    try:
        return dataset_regions(read_json(path), names="labels")
    except MedSegError as exc:
        raise MedSegError(f"{path}: {exc}") from None


def reference_names(ref_dirs: Sequence[str | os.PathLike]) -> list[str]:
    names = [Path(d).resolve().name or str(d) for d in ref_dirs]
    return names if len(set(names)) == len(names) else [f"ref{i + 1}" for i in range(len(names))]


CLI_UNLISTED_HINT = "Add them to --labels, or pass --ignore-unlisted to evaluate only the listed labels."


def check_listed(values: set[int], regions: Sequence[Region], case: str, what: str,
                 hint: str = CLI_UNLISTED_HINT) -> None:
    """Refuse label values that no listed label or region covers (they would be ignored silently)."""
    covered = {v for r in regions for v in r.values}
    unlisted = sorted(values - covered)
    if unlisted:
        listed = ", ".join(f"{r.name}={','.join(map(str, r.values))}" for r in regions)
        raise MedSegError(f"Case {case}: the {what} holds label value(s) {unlisted} that are not in the labels list "
                          f"({listed}). {hint}")


def evaluate_folders(pred_dir: str | os.PathLike, ref_dirs: Sequence[str | os.PathLike],
                     regions: Sequence[Region] | None = None, other_pred_dir: str | os.PathLike | None = None,
                     resample: bool = False, missing_as_empty: bool = False, ignore_unlisted: bool = False,
                     progress: Callable[[float, str], None] | None = None) -> Evaluation:
    """Score every reference case; with several reference folders also compare references pairwise."""
    if not ref_dirs:
        raise MedSegError("Give at least one reference folder.")
    cases, preds, refs, notes = pair_cases(pred_dir, ref_dirs, missing_as_empty)
    others = None
    if other_pred_dir is not None:
        _, others, _, other_notes = pair_cases(other_pred_dir, ref_dirs[:1], missing_as_empty)
        absent = sorted(set(cases) - set(others))
        if absent and not missing_as_empty:  # both models must be scored on the same cases
            raise MedSegError(f"The compared predictions in {other_pred_dir} lack {len(absent)} of the scored "
                              f"case(s): {', '.join(absent[:5])}. Predict them, or pass --missing-as-empty.")
        notes += [f"(compared model) {n}" for n in other_notes]
    names = reference_names(ref_dirs)
    rows, pair_rows, seen = [], [], {}
    other_rows: list[dict] = []
    resampled = []
    for index, case in enumerate(cases):
        if progress:
            progress(index / len(cases), f"evaluating {case}")
        references = [LabelMap.read(files[case]) for files in refs]
        for name, ref in zip(names[1:], references[1:]):
            if not same_grid(ref, references[0]):
                raise MedSegError(f"Case {case}: reference {name} ({describe_grid(ref)}) is not on the grid of "
                                  f"reference {names[0]} ({describe_grid(references[0])}). Resample the references "
                                  "onto one grid.")
        pred, was_resampled, missing = _prediction(preds, case, references[0], resample)
        if was_resampled:
            resampled.append(case)
        other = _prediction(others, case, references[0], resample) if others is not None else None
        values = {"prediction": label_values(pred)} | {f"reference {n}": label_values(r.labels)
                                                       for n, r in zip(names, references)}
        if other is not None:
            values["compared prediction"] = label_values(other[0])
            if other[1]:
                resampled.append(f"{case} (compared model)")
        if regions is not None and not ignore_unlisted:
            for what, found in values.items():
                check_listed(found, regions, case, what)
        case_regions = list(regions) if regions is not None else regions_from_values(set().union(*values.values()))
        seen.update({r.name: r for r in case_regions})
        spacing = references[0].spacing
        extra = {"resampled": was_resampled, "missing_prediction": missing}
        if len(references) > 1:
            model, pairs = stability_rows(case, pred, [r.labels for r in references], names, case_regions, spacing)
            rows += [{**r, **extra} for r in model]
            pair_rows += pairs
        else:
            rows += [{"case": case, "reference": names[0], **r, **extra}
                     for r in case_metrics(pred, references[0].labels, case_regions, spacing)]
        if other is not None:
            other_rows += [{"case": case, "reference": names[0], **r, "resampled": other[1],
                            "missing_prediction": other[2]}
                           for r in case_metrics(other[0], references[0].labels, case_regions, spacing)]
    if resampled:
        notes.append(f"{len(resampled)} prediction(s) were resampled onto the reference grid (nearest neighbour): "
                     + ", ".join(resampled[:5]) + (" ..." if len(resampled) > 5 else ""))
    labels = [r.name for r in regions] if regions is not None else \
        [r.name for r in sorted(seen.values(), key=lambda r: r.values)]
    if regions is not None:
        never = [r.name for r in regions if r.name not in _labels_present(rows)]
        if never:
            notes.append(f"Label(s) {', '.join(never)} appear in no prediction and no reference (Dice NaN everywhere).")
    else:
        rows, pair_rows = _complete(rows, labels, seen), _complete(pair_rows, labels, seen)
        other_rows = _complete(other_rows, labels, seen)
    if progress:
        progress(1.0, "evaluation done")
    return Evaluation(rows, labels, names, notes, other_rows if others is not None else None, pair_rows)


def _prediction(files: dict, case: str, ref: LabelMap, resample: bool) -> tuple[np.ndarray, bool, bool]:
    """(labels on the reference grid, resampled?, missing?) for one case."""
    if case not in files:  # allowed only with missing_as_empty (checked by pair_cases)
        return np.zeros_like(ref.labels), False, True
    labels, was_resampled = onto_reference_grid(LabelMap.read(files[case]), ref, case, resample)
    return labels, was_resampled, False


def _labels_present(rows: Sequence[dict]) -> set[str]:
    return {r["label"] for r in rows if not (r["tp"] == 0 and r["fp"] == 0 and r["fn"] == 0)}


def _complete(rows: list[dict], labels: Sequence[str], regions: dict[str, Region]) -> list[dict]:
    """With labels found automatically, a case lacking a label in all its maps gets a 'both empty' row."""
    if not rows:
        return rows
    empty = case_metrics(np.zeros((1, 1, 1), np.uint8), np.zeros((1, 1, 1), np.uint8),
                         [regions[label] for label in labels], (1.0, 1.0, 1.0))
    empty_by_label = {r["label"]: r for r in empty}
    groups: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        key = tuple((k, r[k]) for k in ("case", "reference", "ref_a", "ref_b") if k in r)
        groups.setdefault(key, {})[r["label"]] = r
    out = []
    for key, by_label in groups.items():
        template = next(iter(by_label.values()))
        shared = {k: v for k, v in template.items() if k in ("resampled", "missing_prediction")}
        for label in labels:
            out.append(by_label.get(label) or {**dict(key), **empty_by_label[label], **shared})
    return out


def evaluate_label_arrays(pred: np.ndarray, refs: Sequence[np.ndarray], ref_names: Sequence[str],
                          spacing: Sequence[float], regions: Sequence[Region] | None = None,
                          case: str = "case", ignore_unlisted: bool = False,
                          unlisted_hint: str = CLI_UNLISTED_HINT) -> Evaluation:
    """The same evaluation for in-memory label maps already on one grid (used by ChimeraX)."""
    values = {"prediction": label_values(pred)} | {f"reference {n}": label_values(r) for n, r in zip(ref_names, refs)}
    if regions is not None and not ignore_unlisted:
        for what, found in values.items():
            check_listed(found, regions, case, what, unlisted_hint)
    regions = list(regions) if regions is not None else regions_from_values(set().union(*values.values()))
    if len(refs) > 1:
        rows, pairs = stability_rows(case, pred, refs, ref_names, regions, spacing)
    else:
        rows = [{"case": case, "reference": ref_names[0], **r} for r in case_metrics(pred, refs[0], regions, spacing)]
        pairs = []
    return Evaluation(rows, [r.name for r in regions], list(ref_names), pair_rows=pairs)


ERROR_KINDS = {1: "false positive", 2: "false negative", 3: "wrong label"}


def error_map(pred: np.ndarray, ref: np.ndarray, regions: Sequence[Region]) -> np.ndarray:
    """Voxel kinds of error: 1 false positive (predicted, reference background), 2 false negative
    (reference labelled, nothing predicted), 3 wrong label (both labelled, differently); 0 elsewhere.

    Only the evaluated labels count: a region's values are merged before comparing.
    """
    def merged(labels):
        out = np.zeros(labels.shape, np.int32)
        for index, region in enumerate(regions, start=1):
            out[region.mask(labels)] = index
        return out
    p, r = merged(pred), merged(ref)
    errors = np.zeros(pred.shape, np.uint8)
    errors[(p > 0) & (r == 0)] = 1
    errors[(p == 0) & (r > 0)] = 2
    errors[(p > 0) & (r > 0) & (p != r)] = 3
    return errors
