"""Per-case, per-label (or per-region) segmentation metrics, pure numpy/scipy.

Conventions for empty masks (nnU-Net's for Dice, stated here for the rest):

* prediction and reference both empty: Dice and IoU are NaN ("nothing to segment, nothing
  predicted"), as are HD95, HD and ASD; summaries leave NaN out and count such cases.
* exactly one of them empty: Dice = IoU = 0 and HD95 = HD = ASD = the image diagonal in mm
  (the largest distance possible on that grid), so a missed structure or a false alarm is
  penalised with a finite worst value instead of disappearing from the mean.
  ``missed`` (reference present, nothing predicted) or ``false_alarm`` (the opposite) is set.

Distances are in millimetres using the voxel spacing; HD95 is the larger of the two directed
95th percentiles of surface distances, ASD the mean over both surfaces' distances (MONAI's
symmetric definitions).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import MedSegError
from .surface import directed_distances

# The columns of one (case, label) row, in table order; "higher is better" for the first two.
METRIC_NAMES = ("dice", "iou", "hd95", "hd", "asd", "volume_pred_ml", "volume_ref_ml", "volume_diff_ml",
                "volume_diff_rel", "tp", "fp", "fn", "missed", "false_alarm",
                "lesions_ref", "lesions_pred", "lesions_missed", "lesions_false")
HIGHER_IS_BETTER = {"dice": True, "iou": True, "hd95": False, "hd": False, "asd": False}
_LESION_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)  # lesions touching at a corner are one lesion


@dataclass(frozen=True)
class Region:
    """One evaluated structure: a label value, or a union of label values (a region)."""

    name: str
    values: tuple[int, ...]

    def mask(self, labels: np.ndarray) -> np.ndarray:
        if len(self.values) == 1:
            return labels == self.values[0]
        return np.isin(labels, self.values)


def parse_regions(items: Iterable[str]) -> list[Region]:
    """Parse ``["1", "liver=2", "tumor=2,3"]``: a value, ``name=value`` or a region ``name=v1,v2``."""
    regions = []
    for item in items:
        for part in str(item).replace(";", " ").split():  # "1 2" in one string works too
            name, _, values = part.rpartition("=")
            try:
                parsed = tuple(int(v) for v in values.replace("+", ",").split(",") if v != "")
            except ValueError:
                raise MedSegError(f"Cannot read the label '{part}': use a label value (2), a named value "
                                  "(liver=2) or a region of several values (tumor=2,3).") from None
            if not parsed or min(parsed) <= 0:
                raise MedSegError(f"The label '{part}' must name label values above 0 (0 is background).")
            regions.append(Region(name or ",".join(map(str, parsed)), parsed))
    names = [r.name for r in regions]
    if len(set(names)) != len(names):
        raise MedSegError(f"Labels are named twice in {names}; give each label or region once.")
    return regions


def regions_from_values(values: Iterable[int], names: dict[int, str] | None = None) -> list[Region]:
    """One region per non-zero label value, named from ``names`` where known."""
    names = names or {}
    return [Region(names.get(int(v), str(int(v))), (int(v),)) for v in sorted(set(int(v) for v in values)) if v != 0]


def label_values(labels: np.ndarray) -> set[int]:
    """The distinct non-zero values of a label map (fast for small integer types)."""
    if labels.dtype.kind in "ui" and labels.size and labels.min() >= 0 and labels.max() < 65536:
        counts = np.bincount(labels.ravel())
        return {int(v) for v in np.nonzero(counts)[0] if v != 0}
    return {int(v) for v in np.unique(labels) if v != 0}


def as_label_array(array: np.ndarray, what: str) -> np.ndarray:
    """Check that an array holds a label map (non-negative whole numbers) and make it integer."""
    array = np.asarray(array)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise MedSegError(f"{what} must be a 3D label map; got shape {array.shape}.")
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise MedSegError(f"{what} holds non-integer values; it looks like an image or probabilities, "
                              "not a label map.")
        array = array.astype(np.int64 if array.max(initial=0) > 32767 else np.int16)
    if array.size and array.min() < 0:
        raise MedSegError(f"{what} holds negative label values; label maps use 0 for background and 1.. for labels.")
    return array


def grid_diagonal_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """The largest distance between two voxel centres of the grid: the worst possible distance."""
    return float(np.linalg.norm([(n - 1) * s for n, s in zip(shape, spacing)]))


def case_metrics(pred: np.ndarray, ref: np.ndarray, regions: Sequence[Region],
                 spacing: Sequence[float]) -> list[dict]:
    """One row of metrics per region for a prediction against a reference on the same grid.

    Args:
        pred, ref: integer label maps, shape (z, y, x).
        regions: what to evaluate.
        spacing: voxel size in mm along (z, y, x).
    """
    if pred.shape != ref.shape:
        raise MedSegError(f"Prediction shape {pred.shape} differs from reference shape {ref.shape}.")
    spacing = tuple(float(s) for s in spacing)
    boxes_pred, boxes_ref = boxes_by_value(pred), boxes_by_value(ref)
    worst = grid_diagonal_mm(ref.shape, spacing)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    rows = []
    for region in regions:
        box = _union_box([_box_of(boxes_pred, v) for v in region.values] +
                         [_box_of(boxes_ref, v) for v in region.values], ref.shape)
        if box is None:
            p = r = np.zeros((1, 1, 1), dtype=bool)
        else:
            p, r = region.mask(pred[box]), region.mask(ref[box])
        rows.append({"label": region.name, **_mask_metrics(p, r, spacing, voxel_ml, worst)})
    return rows


def _mask_metrics(p: np.ndarray, r: np.ndarray, spacing, voxel_ml: float, worst: float) -> dict:
    tp = int(np.count_nonzero(p & r))
    n_pred, n_ref = int(np.count_nonzero(p)), int(np.count_nonzero(r))
    fp, fn = n_pred - tp, n_ref - tp
    nan = float("nan")
    if n_pred == 0 and n_ref == 0:
        dice = iou = hd95 = hd = asd = nan
    elif n_pred == 0 or n_ref == 0:
        dice = iou = 0.0
        hd95 = hd = asd = worst
    else:
        dice = 2 * tp / (2 * tp + fp + fn)
        iou = tp / (tp + fp + fn)
        to_ref, to_pred = directed_distances(p, r, spacing)
        hd95 = float(max(np.percentile(to_ref, 95), np.percentile(to_pred, 95)))
        hd = float(max(to_ref.max(), to_pred.max()))
        asd = float(np.concatenate([to_ref, to_pred]).mean())
    lesions = _lesion_detection(p, r)
    return {"dice": dice, "iou": iou, "hd95": hd95, "hd": hd, "asd": asd,
            "volume_pred_ml": n_pred * voxel_ml, "volume_ref_ml": n_ref * voxel_ml,
            "volume_diff_ml": (n_pred - n_ref) * voxel_ml,
            "volume_diff_rel": (n_pred - n_ref) / n_ref if n_ref else nan,
            "tp": tp, "fp": fp, "fn": fn, "missed": n_ref > 0 and n_pred == 0,
            "false_alarm": n_pred > 0 and n_ref == 0, **lesions}


def _lesion_detection(p: np.ndarray, r: np.ndarray) -> dict:
    """Connected components of the reference never touched by the prediction, and vice versa."""
    ref_components, n_ref = ndimage.label(r, _LESION_CONNECTIVITY)
    pred_components, n_pred = ndimage.label(p, _LESION_CONNECTIVITY)
    overlap = p & r
    found = np.count_nonzero(np.unique(ref_components[overlap]))
    true_pred = np.count_nonzero(np.unique(pred_components[overlap]))
    return {"lesions_ref": int(n_ref), "lesions_pred": int(n_pred),
            "lesions_missed": int(n_ref - found), "lesions_false": int(n_pred - true_pred)}


# find_objects keeps one entry per value up to the largest: beyond this, values are renumbered
# first (a label map holding 2e9 would otherwise ask for a list of 2e9 entries)
_DIRECT_BOX_LIMIT = 65536


def boxes_by_value(labels: np.ndarray) -> dict[int, tuple[slice, ...]]:
    """Label value -> bounding box (slices) of that value's voxels, for every non-zero value present."""
    if labels.size == 0:
        return {}
    if int(labels.max()) < _DIRECT_BOX_LIMIT:
        return {v: b for v, b in enumerate(ndimage.find_objects(labels), start=1) if b is not None}
    values, inverse = np.unique(labels, return_inverse=True)
    found = ndimage.find_objects((inverse.reshape(labels.shape) + 1).astype(np.int64))
    return {int(v): b for v, b in zip(values, found) if b is not None and v != 0}


def _box_of(boxes: dict, value: int):
    return boxes.get(value)


def _union_box(boxes: list, shape: Sequence[int], margin: int = 1) -> tuple[slice, ...] | None:
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    return tuple(slice(max(min(b[d].start for b in boxes) - margin, 0),
                       min(max(b[d].stop for b in boxes) + margin, shape[d]))
                 for d in range(len(shape)))


def dataset_regions(dataset_json: dict, names: str = "keys") -> list[Region]:
    """The evaluated structures of a dataset.json: each foreground label, or each region.

    ``names="keys"`` names them as nnU-Net's summary.json does (``"1"``, ``"(1, 2, 3)"``);
    ``names="labels"`` by their label names. Background and 'ignore' are left out.
    """
    labels = dataset_json.get("labels") if isinstance(dataset_json, dict) else None
    if not isinstance(labels, dict):
        raise MedSegError("The dataset.json has no 'labels' mapping.")
    regions = []
    for name, value in labels.items():
        is_region = isinstance(value, (list, tuple))
        values = tuple(int(v) for v in (value if is_region else [value]))
        if name in ("ignore", "background") or not any(values):
            continue
        key = str(values) if is_region or len(values) != 1 else str(values[0])
        regions.append(Region(key if names == "keys" else name, tuple(v for v in values if v != 0)))
    return regions
