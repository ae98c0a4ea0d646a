"""Cross-validation splits in nnU-Net's ``splits_final.json`` format.

Five folds by case with nnU-Net's seed (the same folds nnU-Net makes for the same case names),
optionally grouped by patient so that no patient is in both training and validation of a fold;
custom splits are read from a file and checked. Fold ``all`` trains on every case.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MedSegError
from ..fileio import read_json, write_json

SPLITS_SEED = 12345
SPLITS_FILE = "splits_final.json"
DEFAULT_FOLDS = 5


def make_splits(cases: Sequence[str], num_folds: int = 5, seed: int = SPLITS_SEED,
                patients: dict[str, str] | None = None) -> list[dict[str, list[str]]]:
    """k folds by case (or by patient when ``patients`` maps case -> patient).

    Without patients this equals nnU-Net's split (scikit-learn KFold, shuffled with the seed, over
    the sorted case names): shuffle the indices, then cut them into k nearly equal runs.
    """
    cases = sorted(cases)
    if patients is None:
        groups = cases
        members = {c: [c] for c in cases}
    else:
        missing = [c for c in cases if c not in patients]
        if missing:
            raise MedSegError(f"The case-to-patient mapping has no entry for {', '.join(missing[:5])}"
                              f"{' ...' if len(missing) > 5 else ''}; give every case its patient.")
        groups = sorted({str(patients[c]) for c in cases})
        members = {g: [c for c in cases if str(patients[c]) == g] for g in groups}
    if len(groups) < 2:
        raise MedSegError(f"Cannot make folds from {len(groups)} {'patient' if patients else 'case'}(s); "
                          "at least 2 are needed (or train with fold 'all').")
    num_folds = min(num_folds, len(groups))
    order = np.random.RandomState(seed).permutation(len(groups))
    splits = []
    for chunk in np.array_split(order, num_folds):
        val_groups = {groups[i] for i in chunk}
        val = sorted(c for g in val_groups for c in members[g])
        splits.append({"train": [c for c in cases if c not in set(val)], "val": val})
    return splits


def check_splits(splits: Any, cases: Sequence[str] | None, source: str,
                 patients: dict[str, str] | None = None) -> list[dict[str, list[str]]]:
    """Refuse a splits list that is malformed, names unknown cases (unless ``cases`` is None), overlaps,
    or puts a patient on both sides."""
    if not isinstance(splits, list) or not splits or not all(
            isinstance(f, dict) and isinstance(f.get("train"), list) and isinstance(f.get("val"), list)
            for f in splits):
        raise MedSegError(f"{source} is not an nnU-Net splits file: expected a list of "
                          '{"train": [...], "val": [...]} entries, one per fold.')
    known = None if cases is None else set(cases)
    for k, fold in enumerate(splits):
        unknown = [] if known is None else sorted(set(fold["train"] + fold["val"]) - known)
        if unknown:
            raise MedSegError(f"{source}, fold {k}: unknown case(s) {', '.join(unknown[:5])}; "
                              "check the names against the preprocessed dataset.")
        both = sorted(set(fold["train"]) & set(fold["val"]))
        if both:
            raise MedSegError(f"{source}, fold {k}: case(s) {', '.join(both[:5])} are in training and validation.")
        if not fold["train"]:
            raise MedSegError(f"{source}, fold {k} has no training cases.")
        if patients:
            train_patients = {patients.get(c, c) for c in fold["train"]}
            shared = sorted({patients.get(c, c) for c in fold["val"]} & train_patients)
            if shared:
                raise MedSegError(f"{source}, fold {k}: patient(s) {', '.join(map(str, shared[:5]))} have cases in "
                                  "both training and validation; move all of a patient's cases to one side.")
    return splits


def random_split(cases: Sequence[str], fold: int, seed: int = SPLITS_SEED) -> dict[str, list[str]]:
    """nnU-Net's rule for a fold beyond the splits list: a random 80:20 split seeded by the fold."""
    cases = sorted(cases)
    rng = np.random.RandomState(seed + fold)
    train_idx = rng.choice(len(cases), int(len(cases) * 0.8), replace=False)
    train = [cases[i] for i in sorted(train_idx)]
    return {"train": train, "val": [c for c in cases if c not in set(train)]}


def load_patients(path: str | os.PathLike) -> dict[str, str]:
    """A case -> patient mapping from JSON (``{"case001": "patientA", ...}``)."""
    data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise MedSegError(f"{path} must be a JSON object mapping each case name to its patient id.")
    return {str(k): str(v) for k, v in data.items()}


def fold_cases(fold: str | int, cases: Sequence[str], preprocessed_dir: str | os.PathLike,
               splits_file: str | os.PathLike | None = None, patients: dict[str, str] | None = None,
               num_folds: int | None = None) -> tuple[list[str], list[str]]:
    """(training cases, validation cases) of a fold.

    The splits come from ``splits_file`` when given (a custom split), else from
    ``<preprocessed>/splits_final.json``, which is created on first use (as nnU-Net does) with
    ``num_folds`` folds (default 5). An existing file with another number of folds than an
    explicit ``num_folds`` is refused rather than silently used.
    """
    cases = sorted(cases)
    if str(fold) == "all":
        return cases, cases
    fold = int(fold)
    if splits_file is not None:
        splits = check_splits(read_json(splits_file), cases, str(splits_file), patients)
    else:
        path = Path(preprocessed_dir) / SPLITS_FILE
        if path.is_file():
            splits = check_splits(read_json(path), cases, str(path), patients)
            if num_folds is not None and len(splits) != num_folds:
                raise MedSegError(f"{path} holds {len(splits)} folds, not the {num_folds} asked for. Delete it to "
                                  f"make {num_folds} new folds (every model trained on the old folds then no longer "
                                  "matches them), or leave out --num-folds.")
        else:
            if num_folds is not None and num_folds > len(cases):
                raise MedSegError(f"Cannot make {num_folds} folds from {len(cases)} cases; ask for at most "
                                  f"{len(cases)}.")
            splits = make_splits(cases, num_folds or DEFAULT_FOLDS, patients=patients)
            write_json(path, splits)
    if fold < len(splits):
        return list(splits[fold]["train"]), list(splits[fold]["val"])
    if patients:
        raise MedSegError(f"Fold {fold} does not exist ({len(splits)} folds); with a patient mapping only the "
                          "listed folds can be used.")
    split = random_split(cases, fold)
    return split["train"], split["val"]
