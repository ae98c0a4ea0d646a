"""Studies with RT-STRUCTs for the tests (helpers only): the real CT series with its UIDs filled
in, known masks on its grid, and RT-STRUCTs made from them by rt-utils (an independent writer)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).parent))
from dicom_helpers import totalseg_ct_dir  # noqa: E402

STUDY_UID = generate_uid(entropy_srcs=["medseg-tests", "study"])
SERIES_UID = generate_uid(entropy_srcs=["medseg-tests", "series"])


def identified_ct(folder: Path) -> Path:
    """A copy of the real CT whose blanked UIDs are filled (rt-utils and RT-STRUCTs need them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(totalseg_ct_dir().iterdir()):
        ds = pydicom.dcmread(str(path))
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = STUDY_UID, SERIES_UID
        ds.SeriesNumber, ds.PatientID, ds.StudyID = 3, "TS0001", "1"
        ds.save_as(str(folder / f"{path.name}.dcm"))
    return folder


def known_masks(count: int = 3) -> dict[str, np.ndarray]:
    """The ``count`` biggest TotalSegmentator structures of this CT, (z, y, x) on our image grid."""
    labels = np.asarray(nib.load(str(totalseg_ct_dir().parent / "example_seg_dicom.nii.gz")).dataobj)
    labels = labels.transpose(2, 1, 0).astype(np.uint8)
    biggest = np.argsort(np.bincount(labels.ravel()))[::-1][1:count + 1]
    return {f"structure {int(v)}": labels == v for v in biggest}


def to_rtutils(mask: np.ndarray) -> np.ndarray:
    """Our (z, y, x) image order -> rt-utils' (rows, columns, slices) in DICOM row order."""
    return np.ascontiguousarray(mask[:, ::-1, :].transpose(1, 2, 0))


def rtutils_rtstruct(ct: Path, masks: dict[str, np.ndarray], path: Path, label: str | None = None) -> Path:
    """An RT-STRUCT of ``masks`` written by rt-utils (contours through boundary pixel centres)."""
    from rt_utils import RTStructBuilder
    rt = RTStructBuilder.create_new(dicom_series_path=str(ct))
    for name, mask in masks.items():
        rt.add_roi(mask=to_rtutils(mask), name=name, approximate_contours=False)
    if label:
        rt.ds.StructureSetLabel = label
    path.parent.mkdir(parents=True, exist_ok=True)
    rt.save(str(path))
    return path


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int(np.logical_and(a, b).sum()) / total if total else 1.0


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
