"""Folders of cases (images + several mask files each) -> one nnU-Net raw dataset.

Each case is a folder. Its channels are NIfTI files or DICOM series folders (converted on the
dcm2niix grid), picked by glob patterns; its label map is built from binary mask files, as in
NSCLC-Radiomics exports (``GTV-1.nii.gz``, ``Lung-Left.nii.gz``, ...):

* select: only masks matching a label's patterns are used; all other files are ignored;
* merge: several patterns (or files) for one label are united into that label;
* overlap rule: where masks of different labels overlap, the label listed LATER wins
  (list the structure that must stay visible last), or ``overlap="error"`` refuses the case.
A mask must lie on its case's image grid (same shape and affine).
"""
from __future__ import annotations

import fnmatch
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MedSegError
from ..images import check_same_grid, read_image, write_image, write_label_image
from ..images.dicom import read_dicom_series
from .layout import create_dataset_folder, write_dataset_json

GRID_ATOL = 1e-3


@dataclass(frozen=True)
class LabelSpec:
    name: str
    patterns: tuple[str, ...]


def parse_label_specs(texts: list[str]) -> list[LabelSpec]:
    """``["gtv=GTV*", "lung=Lung-Left*,Lung-Right*"]`` -> label 1 gtv, label 2 lung (merged)."""
    specs = []
    for text in texts:
        name, sep, patterns = text.partition("=")
        if not sep or not name.strip() or not patterns.strip():
            raise MedSegError(f"Label spec {text!r} must look like NAME=PATTERN[,PATTERN...] (e.g. gtv=GTV*).")
        specs.append(LabelSpec(name.strip(), tuple(p.strip() for p in patterns.split(",") if p.strip())))
    if not specs:
        raise MedSegError("Give at least one label (NAME=PATTERN).")
    return specs


def _matches(folder: Path, pattern: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if fnmatch.fnmatch(p.name, pattern) and not p.name.startswith("."))


def _load_channel(path: Path):
    """An ``Image`` from a NIfTI file or a DICOM series folder."""
    if path.is_dir():
        return read_dicom_series(path)
    return read_image(path)


def build_label_map(image, case_folder: Path, specs: list[LabelSpec], overlap: str = "later-wins",
                    allow_missing: bool = False) -> tuple[np.ndarray, list[str]]:
    """Label map (z, y, x) for one case, plus notes (overlaps resolved, labels missing)."""
    labels = np.zeros(image.shape, dtype=np.uint8)
    notes = []
    for value, spec in enumerate(specs, start=1):
        files = [f for p in spec.patterns for f in _matches(case_folder, p) if f.is_file()]
        if not files:
            if not allow_missing:
                raise MedSegError(f"Case {case_folder.name}: no mask file for label {spec.name!r} "
                                  f"(patterns {', '.join(spec.patterns)}). Pass allow_missing to treat it as empty.")
            notes.append(f"{case_folder.name}: no {spec.name} mask (empty)")
            continue
        mask = np.zeros(image.shape, dtype=bool)
        for path in files:
            mask_image = read_image(path)
            if mask_image.shape != image.shape or not np.allclose(mask_image.affine, image.affine, atol=GRID_ATOL):
                raise MedSegError(f"Case {case_folder.name}: mask {path.name} (shape {mask_image.shape}) is not on the "
                                  f"image grid (shape {image.shape}); resample it onto the image first.")
            mask |= mask_image.array[0] > 0
        paint(labels, mask, value, spec.name, case_folder.name, overlap, notes)
    return labels, notes


def paint(labels: np.ndarray, mask: np.ndarray, value: int, name: str, case: str, overlap: str,
          notes: list[str]) -> None:
    """Write ``mask`` into ``labels`` as ``value``; where it covers earlier labels, ``overlap`` decides:
    "error" refuses, "later-wins" gives the voxels to this label and says how many."""
    clash = mask & (labels > 0)
    if clash.any():
        if overlap == "error":
            raise MedSegError(f"Case {case}: {name} overlaps label(s) {sorted(set(labels[clash].tolist()))} in "
                              f"{int(clash.sum())} voxels.")
        notes.append(f"{case}: {int(clash.sum())} voxels where {name} overlaps an earlier label were given to {name}")
    labels[mask] = value


def convert_cases(source: str | os.PathLike, raw_root: str | os.PathLike, dataset_id: int, name: str,
                  channels: list[str], labels: list[str], overlap: str = "later-wins",
                  allow_missing: bool = False) -> tuple[Path, list[str]]:
    """Convert ``source/<case>/`` folders. ``channels``: ``NAME=PATTERN`` per input channel (file or DICOM folder).

    Returns the dataset folder and notes on overlaps / missing masks. Nothing is kept on error.
    """
    source = Path(source)
    channel_specs = parse_label_specs(channels)
    label_specs = parse_label_specs(labels)
    case_dirs = sorted(p for p in source.iterdir() if p.is_dir()) if source.is_dir() else []
    if not case_dirs:
        raise MedSegError(f"No case folders in {source}; expected one folder per case.")
    target = create_dataset_folder(raw_root, dataset_id, name)
    notes: list[str] = []
    try:
        for case_dir in case_dirs:
            notes += _convert_one(case_dir, target, channel_specs, label_specs, overlap, allow_missing)
        write_dataset_json(target, {str(i): c.name for i, c in enumerate(channel_specs)},
                           {"background": 0, **{s.name: i for i, s in enumerate(label_specs, start=1)}},
                           len(case_dirs),
                           extra={"description": f"converted by medseg from {source.name}; overlapping masks: "
                                                 f"{'later label wins' if overlap != 'error' else 'refused'}"})
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target, notes


def _convert_one(case_dir: Path, target: Path, channel_specs, label_specs, overlap, allow_missing) -> list[str]:
    images = []
    for spec in channel_specs:
        found = [p for pattern in spec.patterns for p in _matches(case_dir, pattern)]
        if len(found) != 1:
            raise MedSegError(f"Case {case_dir.name}: channel {spec.name!r} (patterns {', '.join(spec.patterns)}) "
                              f"matched {len(found)} files/folders; it must match exactly one.")
        images.append(_load_channel(found[0]))
    check_same_grid(images, [s.name for s in channel_specs])
    label_map, notes = build_label_map(images[0], case_dir, label_specs, overlap, allow_missing)
    for c, image in enumerate(images):
        data = image.array[0]
        whole = np.array_equal(data, np.round(data)) and data.min(initial=0) >= -32768 and data.max(initial=0) <= 32767
        write_image(data, image, target / "imagesTr" / f"{case_dir.name}_{c:04d}.nii.gz",
                    dtype=np.int16 if whole else np.float32)
    write_label_image(label_map, images[0], target / "labelsTr" / f"{case_dir.name}.nii.gz")
    return notes
