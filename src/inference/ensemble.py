"""Ensembles of configurations: several models of one dataset, their probabilities averaged.

``nnUNetv2_ensemble`` (nnunetv2 ``ensembling/ensemble.py``) averages the members' saved
probabilities (softmax, or sigmoid per region) with equal weights in float32, then takes the
argmax (or the regions, later ones winning). The same average is made here in memory: the members
predict in turn, each member's probabilities on the input grid are added to a running sum and
dropped, so the peak is about one member's probabilities plus the sum, and no probability file
is written. Members are checked against each other (dataset, channels, labels) before any
checkpoint is loaded.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import MedSegError
from ..images import Image
from ..models import cache
from ..models.manifest import load_manifest
from ..models.model_folder import ModelFolder, open_model_folder
from ..models.registry import resolve_model
from .export import probabilities_to_labels
from .options import PredictOptions
from .postprocessing import apply_postprocessing, load_postprocessing
from .predictor import Prediction, Predictor

ENSEMBLES_DIR = "ensembles"  # beside the members' folders, as nnU-Net's find_best_configuration writes it
_SEPARATOR = "___"


def ensemble_name(member_dirs: Sequence[str | Path], folds: Sequence[str]) -> str:
    """nnU-Net's name for an ensemble: ``ensemble___<member>___<member>___<folds, 0_1_2_3_4>``."""
    return _SEPARATOR.join(["ensemble", *(Path(d).name for d in member_dirs), "_".join(str(f) for f in folds)])


def ensemble_folder(member_dirs: Sequence[str | Path], folds: Sequence[str]) -> Path:
    """Where the cross-validation of an ensemble lives: ``<dataset results>/ensembles/<name>/``."""
    return Path(member_dirs[0]).parent / ENSEMBLES_DIR / ensemble_name(member_dirs, folds)


def find_ensemble_postprocessing(member_dirs: Sequence[Path], folds: Sequence[str]) -> Path | None:
    """The postprocessing.json ``medseg crossval`` chose for this ensemble (members in any order):
    for these folds if there is one, else for any folds."""
    wanted = sorted(Path(d).name for d in member_dirs)
    found: list[tuple[bool, Path]] = []
    for parent in dict.fromkeys(Path(d).parent for d in member_dirs):
        for folder in sorted((parent / ENSEMBLES_DIR).glob(f"ensemble{_SEPARATOR}*")):
            parts = folder.name.split(_SEPARATOR)[1:]
            if len(parts) >= 2 and sorted(parts[:-1]) == wanted and (folder / "postprocessing.json").is_file():
                found.append((parts[-1] != "_".join(folds), folder / "postprocessing.json"))
    return min(found)[1] if found else None


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
    """Every member opened and checked; nothing is fetched until every other member is known to exist."""
    paths: dict[int, Path] = {}
    fetch_later = [i for i, text in enumerate(models) if not offline and _fetchable(text)]
    for i, text in enumerate(models):
        if i not in fetch_later:
            try:
                paths[i] = resolve_model(text, offline=True)
            except MedSegError as exc:
                raise MedSegError(f"Ensemble member {text}: {exc}") from None
    for i in fetch_later:
        paths[i] = resolve_model(models[i], offline=offline)
    folders = []
    for i, text in enumerate(models):
        try:
            folders.append(open_model_folder(paths[i], configuration))
        except MedSegError as exc:
            raise MedSegError(f"Ensemble member {text}: {exc}") from None
    check_members(folders, models)
    return folders


def _fetchable(text: str) -> bool:
    """A manifest model that is not installed yet (fetched once the other members are known to exist)."""
    entry = load_manifest().get(text)
    return entry is not None and entry.source not in ("embedded", "none") and not cache.is_installed(text)


@dataclass
class EnsemblePredictor:
    """Several :class:`Predictor` s of one dataset whose probabilities are averaged (nnUNetv2_ensemble).

    Example:
        >>> p = EnsemblePredictor.from_options(PredictOptions(models=["Dataset901/..3d_fullres",
        ...                                                           "Dataset901/..2d"]).validate())
        >>> labels = p.predict(read_case(files)).labels
    """

    members: list[Predictor]
    postprocessing: list | None = None

    @classmethod
    def from_options(cls, options: PredictOptions) -> EnsemblePredictor:
        return cls.from_models(open_members(options.models, options.configuration), options)

    @classmethod
    def from_models(cls, folders: Sequence[ModelFolder], options: PredictOptions) -> EnsemblePredictor:
        """Members built from opened (and checked) folders; the ensemble, not each member, postprocesses."""
        if len(folders) < 2:
            raise MedSegError("An ensemble needs at least two models.")
        if options.adaptive:
            raise MedSegError("--adaptive cannot be combined with an ensemble of models yet: give one model, or "
                              "leave out --adaptive.")
        chosen = [f.select_folds(options.folds) for f in folders]  # every member's folds checked first
        steps = _ensemble_postprocessing(folders, chosen[0], options.postprocess)
        member_options = dataclasses.replace(options, postprocess=False, models=[])
        return cls([Predictor.from_model(f, member_options) for f in folders], steps)

    @property
    def model(self) -> ModelFolder:
        """The first member's description (labels, channels and dataset.json are every member's)."""
        return self.members[0].model

    @property
    def label_names(self) -> dict[int, str]:
        return self.members[0].label_names

    @property
    def channel_names(self) -> list[str]:
        return self.members[0].channel_names

    def predict(self, image: Image, save_probabilities: bool = False,
                progress: Callable[[float, str], None] | None = None,
                should_stop: Callable[[], bool] | None = None,
                missing_channels: Sequence[str] = ()) -> Prediction:
        """Each member in turn, its probabilities added to the sum; labels from the mean."""
        start, total, timings = time.perf_counter(), None, {}
        n = len(self.members)
        for i, member in enumerate(self.members):
            share = _member_progress(progress, i, n, member.model.path.name)
            prediction = member.predict(image, save_probabilities=True, progress=share, should_stop=should_stop,
                                        missing_channels=missing_channels)
            probabilities = prediction.probabilities
            assert probabilities is not None, "a member asked for probabilities returns them"
            total = probabilities if total is None else np.add(total, probabilities, out=total)
            timings[member.model.path.name] = prediction.timings.get("total", 0.0)
            del prediction, probabilities
        assert total is not None, "an ensemble has members"
        total /= n
        labels = probabilities_to_labels(torch.from_numpy(total), self.model.labels)
        if self.postprocessing:
            labels = apply_postprocessing(labels, self.postprocessing, image.spacing)
        timings["total"] = time.perf_counter() - start
        if progress:
            progress(1.0, "done")
        return Prediction(labels, total if save_probabilities else None, timings)


def _member_progress(progress: Callable[[float, str], None] | None, i: int, n: int,
                     name: str) -> Callable[[float, str], None] | None:
    """A member's progress as its share of the whole run."""
    if progress is None:
        return None
    return lambda fraction, message: progress(min((i + fraction) / n, 0.99), f"{name}: {message}")


def _ensemble_postprocessing(folders: Sequence[ModelFolder], folds: Sequence[str], postprocess) -> list | None:
    """The postprocessing chosen for this ensemble (not any member's own), or the file given."""
    if not postprocess:
        return None
    path = Path(postprocess) if isinstance(postprocess, (str, Path)) else \
        find_ensemble_postprocessing([f.path for f in folders], folds)
    if path is None or not path.is_file():
        where = Path(folders[0].path).parent / ENSEMBLES_DIR
        raise MedSegError(f"Postprocessing was requested but {where} holds no postprocessing.json for the ensemble "
                          f"of {', '.join(f.path.name for f in folders)}. `medseg crossval` chooses it for ensembles "
                          "(train with --save-probabilities), or give the file: --postprocess FILE.")
    return load_postprocessing(path)


def make_predictor(options: PredictOptions) -> Predictor | EnsemblePredictor:
    """A predictor for ``options.models``: one model, or an ensemble of several."""
    if not options.models:
        raise MedSegError("No model given: name one with -m MODEL (repeat -m for an ensemble).")
    if len(options.models) == 1:
        return Predictor.from_folder(resolve_model(options.models[0]), options)
    return EnsemblePredictor.from_options(options)
