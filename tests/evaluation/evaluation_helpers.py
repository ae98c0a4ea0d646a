"""Real label maps for the evaluation tests (TotalSegmentator's example segmentations, see
tests/data/README.md) and helpers to write cases and perturbed "annotator" copies."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

DATA = Path(__file__).resolve().parents[1] / "data" / "evaluation"
CT_FULL = DATA / "totalseg_ct_seg.nii.gz"        # TotalSegmentator full-resolution model, 41 labels
CT_FAST = DATA / "totalseg_ct_seg_fast.nii.gz"   # its fast (3 mm) model on the same CT
DICOM_CROP = DATA / "totalseg_dicom_seg_crop.nii.gz"  # 0.98 x 0.98 x 2 mm, 17 labels


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(labels as (z, y, x), affine) of a NIfTI label map."""
    nii = nib.load(str(path))
    return np.ascontiguousarray(np.asanyarray(nii.dataobj).transpose(2, 1, 0)), nii.affine


def save(labels: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(labels.transpose(2, 1, 0)).astype(np.uint8), affine), str(path))
    return path


def perturb(labels: np.ndarray, how: str) -> np.ndarray:
    """A second "annotator": every label eroded, dilated (into background) or the map shifted."""
    if how.startswith("shift"):
        return np.roll(labels, int(how[5:] or 1), axis=2)
    out = np.zeros_like(labels) if how == "erode" else labels.copy()
    for value in np.unique(labels)[1:]:
        mask = labels == value
        if how == "erode":
            out[ndimage.binary_erosion(mask)] = value
        elif how == "dilate":
            out[ndimage.binary_dilation(mask) & (labels == 0) & (out == 0)] = value
    return out


