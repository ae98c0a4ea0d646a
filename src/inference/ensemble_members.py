"""The members of an ensemble of configurations: opened and checked against each other.

Averaging probabilities only means something for models of one dataset with the same input
channels and the same labels (nnU-Net's ensembling checks none of it); here every member is
found, opened and compared before any checkpoint is loaded or anything downloaded, so a wrong
member is one clear error before the work starts. No torch here (ChimeraX checks members at once).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..datasets.paths import DATASET_FOLDER, data_folder
from ..errors import MedSegError
from ..models import cache
from ..models.manifest import load_manifest
from ..models.model_folder import ModelFolder, open_model_folder
from ..models.registry import resolve_model
from .ensemble_layout import ENSEMBLES_DIR, find_ensemble_postprocessing
from .options import PredictOptions


def _dataset_id(folder: ModelFolder) -> str | None:
    """The dataset a model was trained on, without nnU-Net's version prefix (Dataset004_X = Task004_X)."""
    name = folder.plans.get("dataset_name") or folder.dataset_json.get("name")
    if not isinstance(name, str) or not name:
        return None
    for prefix in ("Dataset", "Task"):
        if name.startswith(prefix) and name[len(prefix):len(prefix) + 3].isdigit():
            return name[len(prefix):]
    return name


def check_members(folders: Sequence[ModelFolder], names: Sequence[str]) -> None:
    """Members must be models of one dataset: the same dataset, channels and labels; raises MedSegError."""
    first, first_name = folders[0], names[0]
    for folder, name in zip(folders[1:], names[1:]):
        a, b = _dataset_id(first), _dataset_id(folder)
        if a is not None and b is not None and a != b:
            raise MedSegError(f"Ensemble members come from different datasets: {first_name} from "
                              f"{first.plans.get('dataset_name')}, {name} from {folder.plans.get('dataset_name')}. "
                              "An ensemble averages configurations (or trainers) of one dataset.")
        if folder.channel_names != first.channel_names:
            raise MedSegError(f"Ensemble members take different input channels: {first_name} "
                              f"({', '.join(first.channel_names)}), {name} ({', '.join(folder.channel_names)}).")
        if folder.labels != first.labels:
            raise MedSegError(f"Ensemble members predict different labels: {first_name} {_describe(first)}, "
                              f"{name} {_describe(folder)}. Their probabilities cannot be averaged.")


def _describe(folder: ModelFolder) -> str:
    labels = folder.labels
    text = ", ".join(f"{v} {n}" for v, n in labels.names.items())
    if labels.regions is not None:
        text += f" (regions {', '.join(str(list(r)) for r in labels.regions)})"
    return f"({text})"


def open_members(models: Sequence[str], configuration: str | None = None,
                 offline: bool | None = None) -> list[ModelFolder]:
    """Every member opened and checked; nothing is fetched until every other member is known to exist.

    A member is a model name, folder or zip, or ``MODEL:CONFIGURATION`` for one configuration of a
    model that holds several (a dataset's results folder by id or name, ``901:2d``, or a zip)."""
    specs = [split_configuration(text) for text in models]
    paths: dict[int, Path] = {}
    fetch_later = [i for i, (model, _) in enumerate(specs) if not offline and _fetchable(model)]
    for i, (model, config) in enumerate(specs):
        if i not in fetch_later:
            try:
                paths[i] = _locate(model, config, offline=True)
            except MedSegError as exc:
                raise MedSegError(f"Ensemble member {models[i]}: {exc}") from None
    for i in fetch_later:
        paths[i] = resolve_model(specs[i][0], offline=offline)
    folders = []
    for i, text in enumerate(models):
        try:
            folders.append(open_model_folder(paths[i], specs[i][1] or configuration))
        except MedSegError as exc:
            raise MedSegError(f"Ensemble member {text}: {exc}") from None
    check_members(folders, models)
    return folders


def split_configuration(text: str) -> tuple[str, str | None]:
    """``MODEL:CONFIGURATION`` -> (MODEL, CONFIGURATION); anything else (an existing path, C:\\...) as is."""
    model, _, configuration = text.rpartition(":")
    if not model or not configuration or Path(text).exists() or any(c in configuration for c in "/\\"):
        return text, None
    return model, configuration


def _locate(model: str, configuration: str | None, offline: bool | None) -> Path:
    """With a configuration, a dataset's results folder for its id or name (its configurations sit side
    by side there); else what the registry finds for a name, folder or zip."""
    if configuration and (model.isdigit() or DATASET_FOLDER.match(model)):
        results = data_folder("results")
        found = sorted(results.glob(f"Dataset{int(model):03d}_*")) if model.isdigit() else [results / model]
        if found and found[0].is_dir():
            return found[0]
    return resolve_model(model, offline=offline)


def _fetchable(text: str) -> bool:
    """A manifest model that is not installed yet (fetched once the other members are known to exist)."""
    entry = load_manifest().get(text)
    return entry is not None and entry.source not in ("embedded", "none") and not cache.is_installed(text)


def check_ensemble(folders: Sequence[ModelFolder], options: PredictOptions) -> Path | None:
    """Refuse what an ensemble cannot do, check every member's folds; returns the ensemble's
    postprocessing file when ``options.postprocess`` asks for one."""
    if len(folders) < 2:
        raise MedSegError("An ensemble needs at least two models.")
    if options.adaptive:
        raise MedSegError("--adaptive cannot be combined with an ensemble of models yet: give one model, or "
                          "leave out --adaptive.")
    if options.force_split:
        raise MedSegError("--force-split is for one TotalSegmentator model, not an ensemble: give one model, or "
                          "leave out --force-split.")
    chosen = [f.select_folds(options.folds) for f in folders]
    return ensemble_postprocessing_file(folders, chosen[0], options.postprocess)


def ensemble_postprocessing_file(folders: Sequence[ModelFolder], folds: Sequence[str],
                                 postprocess: bool | str | os.PathLike | None) -> Path | None:
    """The postprocessing chosen for this ensemble (never a member's own), or the file given; none by default
    (None), as nnU-Net applies an ensemble's postprocessing only on request."""
    if not postprocess:
        return None
    path = Path(postprocess) if isinstance(postprocess, (str, os.PathLike)) else \
        find_ensemble_postprocessing([f.path for f in folders], folds)
    if path is None or not path.is_file():
        where = Path(folders[0].path).parent / ENSEMBLES_DIR
        raise MedSegError(f"Postprocessing was requested but {where} holds no postprocessing.json for the ensemble "
                          f"of {', '.join(f.path.name for f in folders)}. `medseg crossval` chooses it for ensembles "
                          "(train with --save-probabilities), or give the file: --postprocess FILE.")
    return path
