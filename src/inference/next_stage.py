"""What a cascade's first stage (3d_lowres) writes for its next stage when a fold is validated.

nnU-Net's trainer: the validation prediction of each case, put onto the next stage's preprocessed
grid, saved as ``<lowres model>/predicted_next_stage/<next stage>/<case>.npz`` (key ``seg``); the
cascade stage trains on those (training/cascade.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..fileio import atomic_path
from ..images import Image
from ..models.description import resolve_configuration
from ..preprocessing.pipeline import preprocess

NEXT_STAGE_DIR = "predicted_next_stage"


def next_stage_names(config: dict) -> list[str]:
    """The configurations that take this one's predictions (nnU-Net's ``next_stage``: a name or a list)."""
    found = config.get("next_stage")
    if not found:
        return []
    return [str(n) for n in (found if isinstance(found, (list, tuple)) else [found])]


def previous_stage_model_dir(model_dir: Path, previous: str) -> Path:
    """``<Trainer>__<Plans>__3d_cascade_fullres`` -> its sibling ``<Trainer>__<Plans>__3d_lowres``."""
    parts = model_dir.name.split("__")
    return model_dir.parent / "__".join([*parts[:2], previous])


def predictions_dir(previous_model_dir: Path, stage: str) -> Path:
    return previous_model_dir / NEXT_STAGE_DIR / stage


def write_next_stage(image: Image, labels: np.ndarray, plans: dict, config: dict, model_dir: Path,
                     case: str) -> list[Path]:
    """A validation case's predicted labels (on the image's grid) onto each next stage's preprocessed grid."""
    written = []
    for stage in next_stage_names(config):
        stage_config = resolve_configuration(plans, stage)
        # the labels go through the next stage's own preprocessing, as a label map with the image
        _, _, seg = preprocess(image.array, image.spacing, plans, stage_config,
                               seg=np.asarray(labels, dtype=np.int32)[None])
        assert seg is not None, "preprocess returns the label map it is given"
        out = predictions_dir(model_dir, stage)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{case}.npz"
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, seg=np.clip(seg[0], 0, None).astype(np.int16))
        written.append(path)
    return written


