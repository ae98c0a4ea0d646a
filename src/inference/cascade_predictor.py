"""Running a cascade: the previous stage (3d_lowres) first, then the cascade stage with its labels as input.

``medseg predict -c 3d_cascade_fullres`` and ``segment`` get a :class:`CascadePredictor` from
:func:`load_predictor` when the model is a cascade stage; any other model gets a plain Predictor.
The previous stage's labels come from its own model folder beside the cascade stage's (the
dataset's results folder holds both), run here on the same case with the same folds and settings
but no postprocessing (as ``nnUNetv2_predict`` runs it; nnU-Net v1 applies the lowres model's
postprocessing.json, and so does this for v1 models), or from a folder of its predictions
(``--prev-stage-predictions``, like nnUNetv2_predict's ``-prev_stage_predictions``).
"""
from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import MedSegError
from ..images import Image
from ..models.description import ModelFolder
from ..models.model_folder import open_model_folder
from .cascade import previous_stage_dir, previous_stage_file, previous_stage_name, read_previous_stage
from .options import PredictOptions
from .postprocessing import find_postprocessing_file
from .predictor import Prediction, Predictor

PREVIOUS_SHARE = 0.4  # of the progress bar: the previous stage's part (it runs on a coarser grid)


@dataclass
class CascadePredictor:
    """A cascade stage and where its previous stage's labels come from (a predictor, or a folder)."""

    stage: Predictor
    previous: Predictor | None = None
    previous_predictions: Path | None = None

    @classmethod
    def from_model(cls, folder: ModelFolder, options: PredictOptions,
                   previous_predictions: str | os.PathLike | None = None) -> CascadePredictor:
        """Both stages loaded (or only the cascade stage when its previous stage's predictions are given)."""
        name = previous_stage_name(folder.configuration)
        if name is None:
            raise MedSegError(f"Model {folder.path} is not a cascade stage.")
        if previous_predictions is not None:
            given = Path(previous_predictions)
            if not given.is_dir():
                raise MedSegError(f"--prev-stage-predictions: {given} is not a folder (it must hold the {name} "
                                  "stage's prediction of each case, named like the case).")
            return cls(Predictor.from_model(folder, options), None, given)
        previous_folder = open_model_folder(previous_stage_dir(folder), name)  # checked before any weights load
        previous_options = dataclasses.replace(options, configuration=name,
                                               postprocess=_v1_postprocesses(folder, previous_folder, options))
        previous = Predictor.from_model(previous_folder, previous_options)
        return cls(Predictor.from_model(folder, options), previous)

    @property
    def model(self) -> ModelFolder:
        return self.stage.model

    @property
    def channel_names(self) -> list[str]:
        return self.stage.channel_names

    @property
    def label_names(self) -> dict[int, str]:
        return self.stage.label_names

    @property
    def label_members(self) -> dict[int, tuple[int, ...]]:
        return self.stage.label_members

    @property
    def output_values(self) -> dict[int, int] | None:
        return self.stage.output_values

    @property
    def is_region_based(self) -> bool:
        return self.stage.is_region_based

    def check_image(self, image: Image) -> None:
        self.stage.check_image(image)

    def previous_stage_file(self, case_name: str) -> Path | None:
        """The given prediction file for ``case_name`` (checked to exist), or None when the stage runs here."""
        if self.previous_predictions is None:
            return None
        return previous_stage_file(self.previous_predictions, case_name, self.model.dataset_json.get(
            "file_ending", ".nii.gz"))

    def predict(self, image: Image, save_probabilities: bool = False,
                progress: Callable[[float, str], None] | None = None,
                should_stop: Callable[[], bool] | None = None,
                missing_channels: Sequence[str] = (), case_name: str | None = None) -> Prediction:
        """Segment ``image`` with both stages; ``case_name`` finds the given previous-stage prediction."""
        report = progress or (lambda fraction, message: None)
        self.check_image(image)
        start = time.perf_counter()
        if self.previous is None:
            if case_name is None:
                raise MedSegError("The case's name is needed to find its previous-stage prediction.")
            path = self.previous_stage_file(case_name)
            assert path is not None, "a predictor without its previous stage has a predictions folder"
            labels, share = read_previous_stage(path, image), 0.0
        else:
            share = PREVIOUS_SHARE
            labels = self.previous.predict(image, progress=lambda f, m: report(f * share, f"previous stage: {m}"),
                                           should_stop=should_stop, missing_channels=missing_channels).labels
        seconds = time.perf_counter() - start
        prediction = self.stage.predict(image, save_probabilities,
                                        lambda f, m: report(share + f * (1 - share), m), should_stop,
                                        missing_channels, previous_stage=labels)
        prediction.timings = {"previous stage": seconds, **prediction.timings,
                              "total": time.perf_counter() - start}
        return prediction


def _v1_postprocesses(folder: ModelFolder, previous: ModelFolder, options: PredictOptions) -> bool:
    """nnU-Net v1's nnUNet_predict applies the lowres model's postprocessing.json to the labels it feeds the
    cascade (when the file exists); nnU-Net v2's cascade takes the lowres stage's raw labels."""
    if not folder.configuration.get("previous_stage_uncropped"):
        return False
    return find_postprocessing_file(previous.path, previous.select_folds(options.folds)) is not None


def load_predictor(folder: ModelFolder, options: PredictOptions,
                   previous_predictions: str | os.PathLike | None = None) -> Predictor | CascadePredictor:
    """The predictor for an opened model: a CascadePredictor for a cascade stage, else a Predictor."""
    if previous_stage_name(folder.configuration):
        return CascadePredictor.from_model(folder, options, previous_predictions)
    if previous_predictions is not None:
        raise MedSegError(f"--prev-stage-predictions is only for a cascade stage (3d_cascade_fullres); model "
                          f"{folder.path.name} is {folder.configuration_name}.")
    return Predictor.from_model(folder, options)
