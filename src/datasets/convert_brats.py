"""BraTS folder -> nnU-Net raw dataset with region labels (whole tumor / tumor core / enhancing tumor).

Input: one folder per patient holding ``<patient>_t1``, ``_t1ce``, ``_t2``, ``_flair`` and ``_seg``
NIfTI files (BraTS 2023 names ``-t1n``, ``-t1c``, ``-t2w``, ``-t2f``, ``-seg`` work too).
Labels are renumbered so the regions nest: edema 2 -> 1, necrosis/non-enhancing 1 -> 2,
enhancing 4 (before 2023) or 3 (2023) -> 3. Then WT = {1, 2, 3}, TC = {2, 3}, ET = {3}.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import MedSegError
from ..fileio import atomic_path
from .layout import create_dataset_folder, write_dataset_json

CHANNELS = {"t1": ("_t1", "-t1n"), "t1ce": ("_t1ce", "-t1c"), "t2": ("_t2", "-t2w"), "flair": ("_flair", "-t2f")}
CHANNEL_NAMES = {"0": "T1", "1": "T1ce", "2": "T2", "3": "Flair"}
SEG_SUFFIXES = ("_seg", "-seg")
LABEL_MAP = {0: 0, 1: 2, 2: 1, 3: 3, 4: 3}  # BraTS label -> nested-region label
REGION_LABELS = {"background": 0, "whole_tumor": [1, 2, 3], "tumor_core": [2, 3], "enhancing_tumor": [3]}


def _find(folder: Path, patient: str, suffixes) -> Path | None:
    for suffix in suffixes:
        for ending in (".nii.gz", ".nii"):
            path = folder / f"{patient}{suffix}{ending}"
            if path.is_file():
                return path
    return None


def remap_brats_labels(seg: np.ndarray, case: str = "") -> np.ndarray:
    values = {int(v) for v in np.unique(seg)}
    unknown = sorted(values - set(LABEL_MAP))
    if unknown:
        raise MedSegError(f"BraTS case {case}: unexpected label value(s) {unknown}; BraTS labels are 0, 1, 2 and 4 "
                          "(or 3 since 2023).")
    lookup = np.zeros(max(LABEL_MAP) + 1, dtype=np.uint8)
    for old, new in LABEL_MAP.items():
        lookup[old] = new
    return lookup[seg.astype(np.int64)]


def convert_brats(source: str | os.PathLike, raw_root: str | os.PathLike, dataset_id: int,
                  name: str = "BraTS") -> Path:
    """Convert every patient folder under ``source``; returns the new dataset folder."""
    import nibabel as nib
    source = Path(source)
    patients = sorted(p for p in source.iterdir() if p.is_dir()) if source.is_dir() else []
    if not patients:
        raise MedSegError(f"No patient folders in {source}; expected one folder per patient with _t1, _t1ce, _t2, "
                          "_flair and _seg files.")
    problems, cases = [], []
    for folder in patients:
        files = {key: _find(folder, folder.name, suffixes) for key, suffixes in CHANNELS.items()}
        seg = _find(folder, folder.name, SEG_SUFFIXES)
        missing = [k for k, v in files.items() if v is None] + ([] if seg else ["seg"])
        images = [v for v in files.values() if v is not None]  # in CHANNELS order, as files is
        if missing or seg is None:
            problems.append(f"{folder.name}: missing {', '.join(missing)}")
        else:
            cases.append((folder.name, images, seg))
    if problems:
        raise MedSegError(f"{len(problems)} BraTS patient folder(s) are incomplete ({'; '.join(problems[:5])}"
                          f"{'; ...' if len(problems) > 5 else ''}); nothing was written.")
    target = create_dataset_folder(raw_root, dataset_id, name)
    try:
        for patient, images, seg_path in cases:
            for c, path in enumerate(images):
                _copy_as_nii_gz(path, target / "imagesTr" / f"{patient}_{c:04d}.nii.gz")
            seg_img = nib.load(str(seg_path))
            if not isinstance(seg_img, nib.Nifti1Image):  # NIfTI-2 images are Nifti1Image too
                raise MedSegError(f"{seg_path} is not a NIfTI image; BraTS label files are .nii or .nii.gz.")
            labels = remap_brats_labels(np.asanyarray(seg_img.dataobj), patient)
            out = nib.Nifti1Image(labels, seg_img.affine, seg_img.header)
            out.set_data_dtype(np.uint8)
            with atomic_path(target / "labelsTr" / f"{patient}.nii.gz") as tmp:
                nib.save(out, str(tmp))
        write_dataset_json(target, CHANNEL_NAMES, REGION_LABELS, len(cases), regions_class_order=[1, 2, 3],
                           extra={"description": "BraTS converted by medseg: labels 1 edema, 2 non-enhancing/"
                                                 "necrosis, 3 enhancing; regions WT/TC/ET"})
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def _copy_as_nii_gz(source: Path, target: Path) -> None:
    if source.name.endswith(".nii.gz"):
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        return
    import nibabel as nib
    with atomic_path(target) as tmp:
        nib.save(nib.load(str(source)), str(tmp))
