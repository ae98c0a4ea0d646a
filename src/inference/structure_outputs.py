"""Per-structure outputs of a prediction: statistics (``--statistics``) and one mask per structure
(``--split-classes``), named and computed as TotalSegmentator's statistics.json and its folder of masks.

Statistics follow TotalSegmentator 2.18 (statistics.py): every structure of the model is listed;
volume = voxel count x voxel volume (mm3); intensity = mean of the image (cast to int16, as it does)
inside the structure, and intensity_std its standard deviation, rounded to 5 decimals; a structure
touching the image's border (its outer 3 voxels on any side) is incomplete, so both are 0 for it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import MedSegError
from ..fileio import atomic_path
from ..images import Image
from ..images.nifti import strip_nifti_suffix, write_image

BORDER = 3  # voxels: TotalSegmentator leaves out structures reaching this close to the edge


def statistics_path(label_path: Path) -> Path:
    return label_path.with_name(strip_nifti_suffix(label_path.name).removesuffix(".dcm") + "_statistics.json")


def split_folder(label_path: Path) -> Path:
    return label_path.with_name(strip_nifti_suffix(label_path.name).removesuffix(".dcm"))


def planned_outputs(label_path: Path, statistics: bool, split_classes: bool) -> list[Path]:
    """The extra paths a case will write (checked with the label files before any work)."""
    return ([statistics_path(label_path)] if statistics else []) + \
        ([split_folder(label_path) / "structure.nii.gz"] if split_classes else [])


def structure_statistics(labels: np.ndarray, image: Image, names: dict[int, str]) -> dict[str, dict[str, float]]:
    """name -> {"volume": mm3, "intensity": mean, "intensity_std": std} for every structure in ``names``."""
    intensities = image.array[0].astype(np.int16)  # TotalSegmentator reads the CT as int16 for its statistics
    voxel_volume = np.float32(image.spacing[0]) * np.float32(image.spacing[1]) * np.float32(image.spacing[2])
    stats = {}
    for value, name in names.items():
        mask = labels == value
        if _touches_border(mask):
            stats[name] = {"volume": 0.0, "intensity": 0.0, "intensity_std": 0.0}
            continue
        count = int(mask.sum())
        inside = intensities[mask].astype(np.float64)
        stats[name] = {"volume": float(count * voxel_volume),
                       "intensity": float(np.round(inside.mean(), 5)) if count else 0.0,
                       "intensity_std": float(np.round(inside.std(), 5)) if count else 0.0}
    return stats


def _touches_border(mask: np.ndarray) -> bool:
    for axis in range(3):
        low = np.take(mask, range(min(BORDER, mask.shape[axis])), axis=axis)
        high = np.take(mask, range(max(0, mask.shape[axis] - BORDER), mask.shape[axis]), axis=axis)
        if low.any() or high.any():
            return True
    return False


def write_statistics(labels: np.ndarray, image: Image, names: dict[int, str], label_path: Path) -> Path:
    path = statistics_path(label_path)
    text = json.dumps(structure_statistics(labels, image, names), indent=4)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text + "\n", encoding="utf-8")
    return path


def write_split_classes(labels: np.ndarray, image: Image, names: dict[int, str], label_path: Path) -> Path:
    """One uint8 mask per structure, ``<case>/<name>.nii.gz`` (TotalSegmentator's names), every one written."""
    folder = split_folder(label_path)
    if folder.exists() and not folder.is_dir():
        raise MedSegError(f"Cannot write the masks into {folder}: it is a file.")
    folder.mkdir(parents=True, exist_ok=True)
    for value, name in names.items():
        write_image((labels == value).astype(np.uint8), image, folder / f"{name}.nii.gz", dtype=np.uint8)
    return folder


def write_structure_outputs(labels: np.ndarray, image: Image, names: dict[int, str], label_path: Path,
                            statistics: bool, split_classes: bool) -> list[Path]:
    written = []
    if statistics:
        written.append(write_statistics(labels, image, names, label_path))
    if split_classes:
        written.append(write_split_classes(labels, image, names, label_path))
    return written
