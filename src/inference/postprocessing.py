"""Apply nnU-Net's ``postprocessing.json`` (keep the largest connected component of labels/regions)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import MedSegError
from ..fileio import read_json

_KNOWN = ("remove_all_but_largest_component_from_segmentation",)


def largest_component_mask(mask: np.ndarray) -> np.ndarray:
    """Keep the largest connected component(s) of ``mask`` (full connectivity; ties all kept)."""
    from scipy.ndimage import generate_binary_structure, label
    components, count = label(mask, structure=generate_binary_structure(mask.ndim, mask.ndim))
    if count <= 1:
        return mask.copy()
    sizes = np.bincount(components.ravel())[1:]
    keep = np.flatnonzero(sizes == sizes.max()) + 1
    return np.isin(components, keep)


def keep_largest_component(segmentation: np.ndarray, labels_or_regions, background: int = 0) -> np.ndarray:
    """Set voxels of the given label(s)/region(s) outside their largest component to background."""
    items = labels_or_regions if isinstance(labels_or_regions, list) else [labels_or_regions]
    mask = np.zeros(segmentation.shape, dtype=bool)
    for item in items:
        values = list(item) if isinstance(item, (list, tuple)) else [item]
        mask |= np.isin(segmentation, values)
    result = segmentation.copy()
    result[mask & ~largest_component_mask(mask)] = background
    return result


def load_postprocessing(path: str | Path) -> list[tuple[str, dict]]:
    """Read ``postprocessing.json``; only known, data-only steps are accepted (the .pkl is never read)."""
    spec = read_json(path)
    names, kwargs = spec.get("postprocessing_fns", []), spec.get("postprocessing_kwargs", [])
    unknown = [n for n in names if n not in _KNOWN]
    if unknown or len(names) != len(kwargs):
        raise MedSegError(f"{path} lists postprocessing steps MedSeg does not know: {', '.join(unknown) or 'malformed'}.")
    return list(zip(names, kwargs))


def apply_postprocessing(segmentation: np.ndarray, steps: Sequence[tuple[str, dict]]) -> np.ndarray:
    for _name, kw in steps:
        segmentation = keep_largest_component(segmentation, kw["labels_or_regions"], kw.get("background_label", 0))
    return segmentation


def find_postprocessing_file(model_path: Path, folds: Sequence[str]) -> Path | None:
    """The model's postprocessing.json for these folds (nnU-Net keeps it in crossval_results_folds_*)."""
    exact = model_path / f"crossval_results_folds_{'_'.join(folds)}" / "postprocessing.json"
    if exact.is_file():
        return exact
    found = sorted(model_path.glob("crossval_results_folds_*/postprocessing.json")) + \
        sorted(model_path.glob("postprocessing.json"))
    return found[0] if found else None
