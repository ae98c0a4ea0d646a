"""Ensembles of configurations: several models of one dataset, their probabilities averaged.

``nnUNetv2_ensemble`` (nnunetv2 ``ensembling/ensemble.py``) averages the members' saved
probabilities (softmax, or sigmoid per region) with equal weights in float32, then takes the
argmax (or the regions, later ones winning). The same average is made here in memory: the members
predict in turn, each member's probabilities on the input grid are added to a running sum and
dropped, so the peak is one member's own peak plus two probability arrays (its probabilities on
the input grid and the sum), however many members there are, and no probability file is written.
Members are checked against each other (dataset, channels, labels) before any checkpoint is loaded.
"""
from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ..errors import MedSegError
from ..images import Image
from ..models.model_folder import ModelFolder
from ..models.registry import resolve_model
from .cascade_predictor import CascadePredictor, load_predictor
from .conventions import open_predictor
from .ensemble_members import check_ensemble, open_members
from .export import probabilities_to_labels
from .label_values import apply_output_values
from .options import PredictOptions
from .postprocessing import apply_postprocessing, load_postprocessing
from .predictor import Prediction, Predictor


@dataclass
class EnsemblePredictor:
    """Several :class:`Predictor` s of one dataset whose probabilities are averaged (nnUNetv2_ensemble).

    Example:
        >>> p = EnsemblePredictor.from_options(PredictOptions(models=["Dataset901/..3d_fullres",
        ...                                                           "Dataset901/..2d"]).validate())
        >>> labels = p.predict(read_case(files)).labels
    """

    members: list[Predictor | CascadePredictor]
    postprocessing: list | None = None

    @classmethod
    def from_options(cls, options: PredictOptions) -> EnsemblePredictor:
        return cls.from_models(open_members(options.models, options.configuration), options)

    @classmethod
    def from_models(cls, folders: Sequence[ModelFolder], options: PredictOptions) -> EnsemblePredictor:
        """Members built from opened (and checked) folders; the ensemble, not each member, postprocesses."""
        path = check_ensemble(folders, options)
        steps = load_postprocessing(path) if path is not None else None
        member_options = dataclasses.replace(options, postprocess=False, models=[])
        return cls([load_predictor(f, member_options) for f in folders], steps)  # a cascade: both stages

    @property
    def model(self) -> ModelFolder:
        """The first member's description (labels, channels and dataset.json are every member's)."""
        return self.members[0].model

    @property
    def label_names(self) -> dict[int, str]:
        return self.members[0].label_names

    @property
    def label_members(self) -> dict[int, tuple[int, ...]]:
        return self.members[0].label_members

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
            timings[f"model {i + 1}"] = prediction.timings.get("total", 0.0)
            del prediction, probabilities
        assert total is not None, "an ensemble has members"
        total /= n
        labels = probabilities_to_labels(torch.from_numpy(total), self.model.labels)
        if self.postprocessing:
            labels = apply_postprocessing(labels, self.postprocessing, image.spacing)
        if self.members[0].output_values:  # the field's values (BraTS's), after postprocessing as one model's
            labels = apply_output_values(labels, self.members[0].output_values)
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


def make_predictor(options: PredictOptions, previous_predictions: str | os.PathLike | None = None,
                   save_probabilities: bool = False) -> Any:
    """A predictor for ``options.models``: one model (TotalSegmentator's multi-part ones too; a cascade stage
    with its previous stage, or with ``previous_predictions``), or an ensemble of several."""
    if not options.models:
        raise MedSegError("No model given: name one with -m MODEL (repeat -m for an ensemble).")
    if len(options.models) == 1:
        return open_predictor(resolve_model(options.models[0]), options, save_probabilities, previous_predictions)
    if previous_predictions is not None:
        raise MedSegError("--prev-stage-predictions is for one cascade model, not an ensemble of several.")
    return EnsemblePredictor.from_options(options)
