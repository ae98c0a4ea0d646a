"""The engine's one model description: what a model folder of any format is read into."""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MedSegError
from .labels import LabelScheme

_FOLD_DIR = re.compile(r"^fold_(\d+|all)$")


@dataclass
class ModelFolder:
    """A trained model as nnU-Net writes it (``<Trainer>__<Plans>__<configuration>/``)."""

    path: Path
    dataset_json: dict
    plans: dict
    configuration_name: str
    folds: list[str] = field(default_factory=list)
    # the values its field uses, by the value the model writes (BraTS: 1 -> 2, 2 -> 1, 3 -> 4), as its
    # install recorded them from the manifest (models/install_record.py); None: the model's own values
    output_label_values: dict[int, int] | None = None

    @property
    def labels(self) -> LabelScheme:
        return LabelScheme.from_dataset_json(self.dataset_json)

    @property
    def channel_names(self) -> list[str]:
        channels = self.dataset_json.get("channel_names") or self.dataset_json.get("modality") or {}
        if not isinstance(channels, dict) or not all(isinstance(k, str) and k.isdigit() for k in channels):
            raise MedSegError(f"dataset.json: 'channel_names' must map \"0\", \"1\", ... to channel names; "
                              f"got {str(channels)[:100]}.")
        return [str(channels[k]) for k in sorted(channels, key=int)]

    @property
    def configuration(self) -> dict:
        return resolve_configuration(self.plans, self.configuration_name)

    @property
    def num_input_channels(self) -> int:
        """The network's inputs: the image channels, and for a cascade stage (a configuration naming its
        ``previous_stage``) one per foreground label: the previous stage's labels one-hot (inference/cascade.py)."""
        extra = len(foreground_values(self.dataset_json)) if self.configuration.get("previous_stage") else 0
        return len(self.channel_names) + extra

    def default_postprocessing_file(self) -> Path | None:
        """The postprocessing.json applied when none is asked for or refused: none for v2 models (as
        ``nnUNetv2_predict``); v1 folders override this (``nnUNet_predict`` applies theirs)."""
        return None

    def checkpoint_path(self, fold: str, checkpoint_name: str = "checkpoint_final.pth") -> Path:
        path = self.path / f"fold_{fold}" / checkpoint_name
        if not path.is_file():
            present = sorted(p.name for p in (self.path / f"fold_{fold}").glob("*.pth"))
            raise MedSegError(f"Fold {fold} of model {self.path} has no {checkpoint_name} "
                              f"(found: {', '.join(present) or 'no checkpoints'}). "
                              "Choose another checkpoint or fold, or re-download the model.")
        return path

    def select_folds(self, folds: Sequence[str | int] | None) -> list[str]:
        """The requested folds, checked to exist. By default the numbered folds, as nnU-Net's
        predictor does; ``fold_all`` (trained on every case) only when asked for or when alone."""
        if not self.folds:
            raise MedSegError(f"Model {self.path} has no fold_* folders with checkpoints.")
        if folds is None:
            return [f for f in self.folds if f != "all"] or list(self.folds)
        wanted = [str(f) for f in folds]
        missing = [f for f in wanted if f not in self.folds]
        if missing:
            raise MedSegError(f"Model {self.path} has no fold(s) {', '.join(missing)}; "
                              f"available folds: {', '.join(self.folds)}.")
        return wanted


def foreground_values(dataset_json: dict) -> list[int]:
    """Every label value but background (and the ignore label), sorted: a cascade's one-hot input channels
    (every value a region spans, for region models), as nnU-Net counts them."""
    values: set[int] = set()
    for name, value in (dataset_json.get("labels") or {}).items():
        if name == "ignore":
            continue
        values.update(int(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
    return sorted(v for v in values if v != 0)


def resolve_configuration(plans: dict, name: str, _chain: tuple[str, ...] = ()) -> dict:
    """A configuration of the plans with ``inherits_from`` applied."""
    configs = plans.get("configurations", {})
    if not isinstance(configs, dict):
        raise MedSegError("The plans' 'configurations' is not a mapping; plans.json is damaged.")
    if name in _chain:
        raise MedSegError(f"The plans' configurations inherit from each other in a loop "
                          f"({' -> '.join((*_chain, name))}); plans.json is damaged.")
    if name not in configs:
        raise MedSegError(f"The plans have no configuration {name!r} (available: {', '.join(map(str, configs))}).")
    if not isinstance(configs[name], dict):
        raise MedSegError(f"The plans' configuration {name!r} is not a mapping; plans.json is damaged.")
    config = dict(configs[name])
    parent = config.pop("inherits_from", None)
    if parent:
        merged = resolve_configuration(plans, parent, (*_chain, name))
        merged.update(config)
        return merged
    return config
