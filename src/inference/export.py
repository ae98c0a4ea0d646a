"""Put network logits back onto the input grid: resample, labels (argmax or regions), un-crop, un-transpose."""
from __future__ import annotations

import numpy as np

from ..memory import array_bytes, check_memory
from ..models.labels import LabelScheme
from ..preprocessing.cropping import uncrop
from ..preprocessing.pipeline import PreprocessRecord
from ..preprocessing.resampling import resample_logits


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
           with_probabilities: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits (k, *network grid) -> labels (z, y, x) on the input grid, and optionally probabilities."""
    # the logits on the input grid and their probabilities, side by side (float32)
    check_memory(2 * array_bytes((labels.num_outputs, *record.shape_after_cropping), 4),
                 f"Putting {labels.num_outputs} output channels back onto the image grid {record.shape_after_cropping}",
                 "Crop the image to the region of interest, or use a model with fewer labels.")
    kwargs = config.get("resampling_fn_probabilities_kwargs", {})
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
