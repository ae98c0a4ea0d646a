"""Training a cascade stage (3d_cascade_fullres) as nnU-Net does.

Where the previous stage's segmentations come from (nnU-Net's ``nnUNetTrainer``): each 3d_lowres
fold, when validated, writes its prediction of every validation case onto the next stage's
preprocessed grid as ``<lowres model>/predicted_next_stage/<next stage>/<case>.npz`` (key ``seg``).
With all folds of the lowres stage validated, every case has one made by a model that never saw
it; the cascade stage trains on those. Each training patch carries that map as a second
segmentation channel through the spatial augmentation (nearest neighbour, like the labels), and
it reaches the network one-hot encoded per foreground label after the image channels, as at
inference (inference/cascade.py).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import MedSegError
from ..inference.cascade import foreground_values, previous_stage_name
from ..inference.next_stage import predictions_dir, previous_stage_model_dir
from .data import PreprocessedCases


def previous_stage_channels(setup) -> int:
    """Extra network inputs of the configuration trained: one per foreground label for a cascade stage."""
    return len(foreground_values(setup.dataset_json)) if previous_stage_name(setup.config) else 0


def check_previous_stage(setup, cases: Sequence[str], trainer_name: str) -> Path | None:
    """For a cascade stage: the folder with the previous stage's prediction of every case, checked
    before training starts; None for any other configuration."""
    previous = previous_stage_name(setup.config)
    if previous is None:
        return None
    folder = predictions_dir(previous_stage_model_dir(setup.model_dir, previous), setup.configuration)
    missing = [c for c in cases if not (folder / f"{c}.npz").is_file()]
    if missing:
        dataset = setup.plans.get("dataset_name", "DATASET")
        raise MedSegError(f"Training {setup.configuration} needs the {previous} stage's prediction of every case "
                          f"({len(missing)} of {len(cases)} missing in {folder}, e.g. {', '.join(missing[:3])}). The "
                          f"{previous} folds write them when they are validated: run `medseg train {dataset} "
                          f"{previous} -f 0 1 2 3 4{_trainer_flag(trainer_name)}` (with validation) first.")
    return folder


def _trainer_flag(name: str) -> str:
    return "" if name == "nnUNetTrainer" else f" --trainer {name}"


class CascadeCases(PreprocessedCases):
    """Preprocessed cases whose segmentation carries the previous stage's map as a second channel."""

    def __init__(self, folder, names, previous_dir: Path) -> None:
        super().__init__(folder, names)
        self.previous_dir = Path(previous_dir)

    def load(self, name: str):
        if name not in self._cache:
            data, seg, locations = super().load(name)
            with np.load(self.previous_dir / f"{name}.npz", allow_pickle=False) as npz:
                previous = npz["seg"]
            if previous.shape != seg.shape[1:]:
                raise MedSegError(f"The previous stage's prediction of case {name} ({previous.shape}) does not fit "
                                  f"its preprocessed data ({seg.shape[1:]}); predict the previous stage again.")
            self._cache[name] = (data, np.stack([seg[0], previous.astype(seg.dtype)]), locations)
        return self._cache[name]


def with_previous_stage_input(data, seg, dataset_json: dict):
    """Batches (b, c, ...) + (b, 2, ...) -> network input with the one-hot previous stage, and (b, 1, ...) labels."""
    import torch
    previous = seg[:, 1]
    onehot = [(previous == value).to(data.dtype)[:, None] for value in foreground_values(dataset_json)]
    return torch.cat([data, *onehot], 1), seg[:, :1]
