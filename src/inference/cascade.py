"""nnU-Net cascades: the previous stage's segmentation as extra network input channels.

A ``3d_cascade_fullres`` configuration names its ``previous_stage`` (``3d_lowres``). Its network takes
the image channels plus one channel per foreground label: the previous stage's label map, on the
case's own grid, one-hot encoded. How that map reaches the network's grid differs:

- nnU-Net v2 preprocesses it together with the image, like a training label map (transpose, crop
  to the image's non-zero box, resample as a segmentation), so it stays aligned with the image;
- nnU-Net v1 (``"previous_stage_uncropped": True`` in the configuration, models/v1_folder.py)
  transposes the *uncropped* map and resizes it to the preprocessed (cropped) image's shape (as a
  label map: each label's indicator linearly, the best-scoring label wins). That
  misaligns the two wherever cropping removed something; it is what v1's models were trained and
  evaluated with, so it is reproduced here.

The one-hot channels cover the foreground label values (every value a region spans, for region
models), in increasing order, after the image channels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MedSegError
from ..images import Image, read_image
from ..models.description import ModelFolder, foreground_values
from ..preprocessing.segmentation import resample_label_volume

__all__ = ["previous_stage_name", "foreground_values", "previous_stage_input",
           "previous_stage_dir", "previous_stage_file", "read_previous_stage"]


def previous_stage_name(config: dict) -> str | None:
    """The configuration whose segmentation this one takes as input (nnU-Net's ``previous_stage``)."""
    name = config.get("previous_stage")
    return str(name) if name else None


def one_hot(labels: np.ndarray, values: list[int], dtype=np.float32) -> np.ndarray:
    """(z, y, x) labels -> (len(values), z, y, x), 1 where the label equals each value."""
    out = np.zeros((len(values), *labels.shape), dtype=dtype)
    for channel, value in enumerate(values):
        out[channel][labels == value] = 1
    return out


def append_previous_stage(data: np.ndarray, previous: np.ndarray, dataset_json: dict) -> np.ndarray:
    """Network input (c, ...) + the previous stage's labels on the network grid ((1, ...) or (...)) one-hot."""
    labels = previous[0] if previous.ndim == data.ndim else previous
    if labels.shape != data.shape[1:]:
        raise MedSegError(f"The previous stage's segmentation ({labels.shape}) does not fit the preprocessed "
                          f"image ({data.shape[1:]}).")
    return np.concatenate([data, one_hot(labels, foreground_values(dataset_json), data.dtype)])


def previous_stage_input(data: np.ndarray, seg: np.ndarray | None, labels: np.ndarray,
                         model: ModelFolder) -> np.ndarray:
    """The cascade stage's network input: preprocessed image ``data`` + the previous stage one-hot.

    ``seg`` is the previous stage's map as preprocessing put it on the network grid (v2), ``labels``
    the same map on the image's grid (v1 resizes it from there itself).
    """
    config = model.configuration
    if not previous_stage_name(config):
        raise MedSegError(f"Model {model.path.name} is not a cascade stage; it takes no previous-stage segmentation.")
    if config.get("previous_stage_uncropped"):
        seg = resize_uncropped(labels, [int(a) for a in model.plans.get("transpose_forward", [0, 1, 2])],
                               tuple(data.shape[1:]))
    if seg is None:
        raise MedSegError("The previous stage's segmentation was not preprocessed with the image.")
    return append_previous_stage(data, seg, model.dataset_json)


def resize_uncropped(labels: np.ndarray, transpose: list[int], shape: tuple[int, ...]) -> np.ndarray:
    """nnU-Net v1's rule: the whole (uncropped) map, transposed, resized to ``shape`` as a label map (each
    label's indicator linearly, no separate z; the best-scoring label wins), not cropped first."""
    return resample_label_volume(labels.transpose(transpose), shape, axis=None, order=1)


def previous_stage_dir(model: ModelFolder) -> Path:
    """The previous stage's model folder beside a cascade stage's, or one clear error naming it."""
    name = previous_stage_name(model.configuration)
    if name is None:
        raise MedSegError(f"Model {model.path} is not a cascade stage (its configuration names no previous stage).")
    parts = model.path.name.split("__")
    if getattr(model, "trainer_name", None) is not None and len(parts) == 2:  # nnU-Net v1's layout
        return _v1_previous_stage_dir(model.path, name)
    wanted = "__".join([*parts[:2], name]) if len(parts) == 3 else f"<Trainer>__<Plans>__{name}"
    candidate = model.path.parent / wanted
    if not (candidate / "plans.json").is_file():
        raise MedSegError(f"Model {model.path.name} is the second stage of a cascade and needs its {name} stage: "
                          f"{candidate} is missing. Install the whole dataset's results folder (both stages), or "
                          f"give the {name} predictions with --prev-stage-predictions DIR.")
    return candidate


def _v1_previous_stage_dir(path: Path, name: str) -> Path:
    """v1: ``<root>/3d_cascade_fullres/<Task>/<Trainer>__<Plans>`` -> ``<root>/3d_lowres/<Task>/*__<Plans>``
    (its trainer is usually another class: nnUNetTrainerV2 for nnUNetTrainerV2CascadeFullRes)."""
    plans_name = path.name.split("__")[-1]
    task_dir = path.parent.parent.parent / name / path.parent.name
    found = sorted(p for p in task_dir.glob(f"*__{plans_name}") if (p / "plans.pkl").is_file())
    preferred = [p for p in found if p.name.split("__")[0] in ("nnUNetTrainerV2", "nnUNetTrainer")]
    if preferred or found:
        return (preferred or found)[0]
    raise MedSegError(f"nnU-Net v1 model {path} is the second stage of a cascade and needs its {name} stage "
                      f"(a <Trainer>__{plans_name} folder in {task_dir}), which is missing. Install the model's "
                      f"{name} folder too, or give the {name} predictions with --prev-stage-predictions DIR.")


def previous_stage_file(folder: Path, case: str, file_ending: str = ".nii.gz") -> Path:
    """``DIR/<case><file_ending>``, as nnUNetv2_predict -prev_stage_predictions names them; checked to exist."""
    path = Path(folder) / f"{case}{file_ending}"
    if not path.is_file():
        raise MedSegError(f"No previous-stage prediction for case {case}: {path} is missing (the previous "
                          "stage's output for each case, named like the case).")
    return path


def read_previous_stage(path: Path, image: Image) -> np.ndarray:
    """A previous stage's label map for ``image``, checked to lie on exactly the image's grid."""
    labels = read_image(path)
    if labels.num_channels != 1 or labels.shape != image.shape:
        raise MedSegError(f"The previous-stage prediction {path} ({labels.shape}) is not on the case's grid "
                          f"({image.shape}); it must be the previous stage's output for this case.")
    values = labels.array[0]
    if not np.all(np.isfinite(values)) or not np.array_equal(values, np.round(values)):
        raise MedSegError(f"The previous-stage prediction {path} is not a label map (it holds non-integer values).")
    return values.astype(np.int16)
