"""Put network logits back onto the input grid: resample, labels (argmax or regions), un-crop, un-transpose."""
from __future__ import annotations

import numpy as np

from ..memory import array_bytes, check_memory
from ..models.labels import LabelScheme
from ..preprocessing.cropping import uncrop
from ..preprocessing.pipeline import PreprocessRecord
from ..preprocessing.resample_pieces import axis_maps
from ..preprocessing.resampling import resample_logits
from .export_pieces import PIECE_BYTES, labels_in_pieces, piece_memory


def logits_to_probabilities(logits, labels: LabelScheme):
    import torch
    return torch.sigmoid(logits) if labels.is_region_based else torch.softmax(logits, 0)


def label_dtype(labels: LabelScheme) -> type:
    """The smallest integer type that holds every label value the model declares."""
    top = max(labels.names, default=0)
    return np.uint8 if top < 256 else np.uint16 if top < 65536 else np.int32


def channel_values(labels: LabelScheme) -> np.ndarray:
    """The label value each softmax channel stands for: background, then the declared values in
    order, so labels that skip values ({0, 1, 5}) are written as 5, never as the channel index 2."""
    return np.array([0, *sorted(labels.names)], dtype=label_dtype(labels))


def probabilities_to_labels(probabilities, labels: LabelScheme) -> np.ndarray:
    """argmax for softmax models; for region models later regions overwrite earlier ones (p > 0.5)."""
    dtype = label_dtype(labels)
    if not labels.is_region_based:
        return channel_values(labels)[probabilities.argmax(0).numpy()]
    out = np.zeros(probabilities.shape[1:], dtype=dtype)
    assert labels.regions_class_order is not None, "a region scheme has a class order"
    for channel, value in enumerate(labels.regions_class_order):
        out[(probabilities[channel] > 0.5).numpy()] = value
    return out


def export(logits, record: PreprocessRecord, config: dict, labels: LabelScheme,
           with_probabilities: bool = False, piece_bytes: int = PIECE_BYTES) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits (k, *network grid) -> labels (z, y, x) on the input grid, and optionally probabilities.

    Labels alone are made in pieces (``export_labels_in_pieces``) whenever the resampling allows it;
    probabilities need every channel on the full grid at once."""
    kwargs = config.get("resampling_fn_probabilities_kwargs", {})
    if not with_probabilities and kwargs.get("order", 1) == 1 and kwargs.get("order_z", 0) in (0, 1):
        return export_labels_in_pieces(logits, record, config, labels, piece_bytes), None
    # the logits on the input grid and their probabilities, side by side (float32)
    check_memory(2 * array_bytes((labels.num_outputs, *record.shape_after_cropping), 4),
                 f"Putting {labels.num_outputs} output channels back onto the image grid {record.shape_after_cropping}"
                 + (" with their probabilities" if with_probabilities else ""),
                 ("Leave out --save-probabilities (labels alone are made piece by piece), crop the image to the "
                  "region of interest, or use a model with fewer labels.") if with_probabilities else
                 "Crop the image to the region of interest, or use a model with fewer labels.")
    logits = resample_logits(logits.float().cpu(), record.shape_after_cropping, record.target_spacing,
                             record.spacing, order=kwargs.get("order", 1), order_z=kwargs.get("order_z", 0),
                             force_separate_z=kwargs.get("force_separate_z"))
    # nnU-Net v1 models average probabilities, not logits (models/v1_folder.py)
    probabilities = logits if config.get("average_probabilities") else logits_to_probabilities(logits, labels)
    del logits
    label_map = probabilities_to_labels(probabilities, labels)
    label_map = uncrop(label_map, record.bbox, record.shape_before_cropping).transpose(record.transpose_backward)
    if not with_probabilities:
        return np.ascontiguousarray(label_map), None
    probs = probabilities.numpy()
    full = uncrop(probs, record.bbox, record.shape_before_cropping, fill=0)
    if not labels.is_region_based:  # outside the crop: certainly background
        outside = np.ones(record.shape_before_cropping, dtype=bool)
        outside[tuple(slice(a, b) for a, b in record.bbox)] = False
        full[0][outside] = 1
    full = full.transpose([0, *[a + 1 for a in record.transpose_backward]])
    return np.ascontiguousarray(label_map), np.ascontiguousarray(full)


def export_labels_in_pieces(logits, record: PreprocessRecord, config: dict, labels: LabelScheme,
                            piece_bytes: int = PIECE_BYTES) -> np.ndarray:
    """Labels on the input grid from logits (k, *network grid), resampled and labelled box by box: never
    every channel on the full grid at once (118 channels of a whole-body CT would need 74 GB)."""
    kwargs = config.get("resampling_fn_probabilities_kwargs", {})
    shape = record.shape_after_cropping
    full = record.shape_before_cropping
    check_memory(2 * array_bytes(full, np.dtype(label_dtype(labels)).itemsize)
                 + piece_memory(shape, labels.num_outputs, piece_bytes),
                 f"Putting {labels.num_outputs} output channels back onto the image grid {tuple(full)}",
                 "Crop the image to the region of interest.")
    maps = axis_maps(logits.shape[1:], shape, record.target_spacing, record.spacing,
                     order_z=kwargs.get("order_z", 0), force_separate_z=kwargs.get("force_separate_z"))
    # v1 models average probabilities (models/v1_folder.py); sigmoid(x) > 0.5 is taken on the sigmoid itself
    # so the labels equal the whole export's; softmax is monotonic, so argmax needs no exponentials
    as_probabilities = labels.is_region_based and not config.get("average_probabilities")

    def to_labels(values):
        return probabilities_to_labels(logits_to_probabilities(values, labels) if as_probabilities else values, labels)

    out: np.ndarray = np.zeros(full, dtype=label_dtype(labels))  # outside the crop: background
    labels_in_pieces(logits.cpu(), maps, to_labels, out, [a for a, _ in record.bbox], piece_bytes)
    return np.ascontiguousarray(out.transpose(record.transpose_backward))
