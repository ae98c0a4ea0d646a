"""Apply nnU-Net's ``postprocessing.json`` (keep the largest connected component of labels/regions)."""
from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import MedSegError
from ..fileio import read_json

_KNOWN = ("remove_all_but_largest_component_from_segmentation",)


def largest_component_mask(mask: np.ndarray, connectivity: int | None = None,
                           min_voxels: float | None = None) -> np.ndarray:
    """Keep the largest connected component(s) of ``mask`` (ties all kept); ``connectivity`` 1 = faces only
    (nnU-Net v1), default full. With ``min_voxels`` smaller components are kept too when at least that big."""
    from scipy.ndimage import generate_binary_structure, label
    components, count = label(mask, structure=generate_binary_structure(mask.ndim, connectivity or mask.ndim))
    if count <= 1:
        return mask.copy()
    sizes = np.bincount(components.ravel())[1:]
    keep = sizes == sizes.max()
    if min_voxels is not None:
        keep |= sizes >= min_voxels
    return np.isin(components, np.flatnonzero(keep) + 1)


def keep_largest_component(segmentation: np.ndarray, labels_or_regions, background: int = 0,
                           connectivity: int | None = None, min_voxels: float | None = None) -> np.ndarray:
    """Set voxels of the given label(s)/region(s) outside their largest component to background."""
    items = labels_or_regions if isinstance(labels_or_regions, list) else [labels_or_regions]
    mask = np.zeros(segmentation.shape, dtype=bool)
    for item in items:
        values = list(item) if isinstance(item, (list, tuple)) else [item]
        mask |= np.isin(segmentation, values)
    result = segmentation.copy()
    result[mask & ~largest_component_mask(mask, connectivity, min_voxels)] = background
    return result


def load_postprocessing(path: str | Path) -> list[tuple[str, dict]]:
    """Read ``postprocessing.json``; only known, data-only steps are accepted (the .pkl is never read)."""
    spec = read_json(path)
    if "for_which_classes" in spec:
        return _v1_steps(spec, path)
    names, kwargs = spec.get("postprocessing_fns", []), spec.get("postprocessing_kwargs", [])
    unknown = [n for n in names if n not in _KNOWN]
    if unknown or len(names) != len(kwargs):
        raise MedSegError(f"{path} lists postprocessing steps MedSeg does not know: "
                          f"{', '.join(unknown) or 'malformed'}.")
    return list(zip(names, kwargs))


def _v1_steps(spec: dict, path) -> list[tuple[str, dict]]:
    """nnU-Net v1's format: ``for_which_classes`` (labels, or lists of labels taken together), optionally
    ``min_valid_object_sizes`` (a Python literal: class -> mm^3; smaller non-largest objects are removed);
    v1 labels components with face connectivity."""
    sizes = spec.get("min_valid_object_sizes")
    try:
        sizes = ast.literal_eval(sizes) if isinstance(sizes, str) else sizes  # literals only: no code runs
    except (ValueError, SyntaxError):
        raise MedSegError(f"{path}: cannot read its min_valid_object_sizes {sizes!r}.") from None
    steps = []
    for item in spec["for_which_classes"] or []:
        key = tuple(item) if isinstance(item, list) else item
        kwargs = {"labels_or_regions": list(item) if isinstance(item, list) else item, "connectivity": 1}
        if isinstance(sizes, dict) and sizes.get(key) is not None:
            kwargs["min_volume_mm3"] = float(sizes[key])
        steps.append(("remove_all_but_largest_component_from_segmentation", kwargs))
    return steps


def apply_postprocessing(segmentation: np.ndarray, steps: Sequence[tuple[str, dict]],
                         spacing: Sequence[float] | None = None) -> np.ndarray:
    """``spacing`` (mm) is needed only by steps with a minimum object volume (nnU-Net v1)."""
    voxel_volume = float(np.prod(spacing)) if spacing is not None else None
    for _name, kw in steps:
        min_voxels = None
        if kw.get("min_volume_mm3") is not None:
            if voxel_volume is None:
                raise MedSegError("This postprocessing needs the image's voxel spacing.")
            min_voxels = kw["min_volume_mm3"] / voxel_volume
        segmentation = keep_largest_component(segmentation, kw["labels_or_regions"], kw.get("background_label", 0),
                                              kw.get("connectivity"), min_voxels)
    return segmentation


def find_postprocessing_file(model_path: Path, folds: Sequence[str]) -> Path | None:
    """The model's postprocessing.json for these folds (nnU-Net keeps it in crossval_results_folds_*)."""
    exact = model_path / f"crossval_results_folds_{'_'.join(folds)}" / "postprocessing.json"
    if exact.is_file():
        return exact
    found = sorted(model_path.glob("crossval_results_folds_*/postprocessing.json")) + \
        sorted(model_path.glob("postprocessing.json"))
    return found[0] if found else None
