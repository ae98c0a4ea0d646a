"""RT-STRUCT and DICOM-SEG objects of a study -> label maps on the grid of the series they reference.

    >>> objects = find_label_objects("study/")
    >>> info = referenced_series(objects[0], list_dicom_series("study/"), "study/")
    >>> result = label_map(objects[0], source, ["GTV*", "Lung*"])   # select and order ROIs

Rules (docs/dicom.md says the same):

* ROIs / segments are numbered 1, 2, ... in the order selected: ``--roi`` patterns (shell globs,
  case-insensitive) in the order given, the ROIs one pattern matches in file order; without
  patterns every ROI in file order.
* Overlaps: where two selected ROIs overlap, the one numbered later keeps the voxels (list the
  structure that must stay whole last); a warning says how many voxels changed hands.
* An ROI without contours (or filling no voxel) is left out with a warning; one a pattern names
  and nothing else matches is an error.
"""
from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MedSegError
from ..fileio import atomic_path, write_json
from .dicom_discovery import DicomWarning, SeriesInfo, iter_files
from .dicom_seg import read_segment_masks
from .dicom_volume import DicomSource
from .nifti import write_label_image
from .rtstruct_read import Roi, SliceGrid, rasterize_roi, read_rois

LABEL_MODALITIES = ("RTSTRUCT", "SEG")
OVERLAP_RULE = "where ROIs overlap, the ROI numbered later keeps the voxels"


@dataclass
class LabelObject:
    """An RT-STRUCT or SEG file: what it references and the names of its ROIs / segments."""

    path: Path
    modality: str                 # "RTSTRUCT" or "SEG"
    label: str                    # StructureSetLabel / SeriesDescription: tells annotators apart
    series_uids: list[str]        # referenced image series
    sop_uids: set[str] = field(repr=False, default_factory=set)   # referenced images
    frame_of_reference_uid: str = ""
    names: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "rtstruct" if self.modality == "RTSTRUCT" else "seg"


@dataclass
class LabelResult:
    labels: np.ndarray                       # (z, y, x) on the image grid (image row order)
    names: dict[int, str]                    # label value -> ROI / segment name
    colors: dict[int, tuple[int, int, int]]  # label value -> RGB where the file gives one
    empty: list[str]                         # ROIs left out: no contours / no voxels
    overlaps: dict[str, int]                 # ROI name -> voxels it took from earlier ROIs


def find_label_objects(folder: str | Path) -> list[LabelObject]:
    """Every RT-STRUCT and SEG file under ``folder``, in file order."""
    import pydicom
    found = []
    for path in iter_files(Path(folder)):
        try:
            head = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=["Modality"])
        except Exception:
            continue  # not DICOM, or damaged: the image scan reports damaged files
        if str(head.get("Modality", "")).upper() not in LABEL_MODALITIES:
            continue
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        except Exception as exc:
            raise MedSegError(f"{path} is a damaged {head.Modality} file ({type(exc).__name__}: {exc}).") from exc
        found.append(_describe(ds, path))
    return found


def _describe(ds, path: Path) -> LabelObject:
    modality = str(ds.Modality).upper()
    if modality == "RTSTRUCT":
        series, sops = _rtstruct_references(ds)
        names = [str(item.get("ROIName", "") or f"ROI {item.ROINumber}")
                 for item in ds.get("StructureSetROISequence", [])]
        label = str(ds.get("StructureSetLabel", "") or ds.get("SeriesDescription", ""))
    else:
        series, sops = [], set()
        for item in ds.get("ReferencedSeriesSequence", []):
            series.append(str(item.get("SeriesInstanceUID", "")))
            sops |= {str(i.ReferencedSOPInstanceUID) for i in item.get("ReferencedInstanceSequence", [])}
        names = [str(item.get("SegmentLabel", "") or f"segment {item.SegmentNumber}")
                 for item in ds.get("SegmentSequence", [])]
        label = str(ds.get("SeriesDescription", "") or ds.get("ContentLabel", ""))
    return LabelObject(path, modality, label or path.stem, [s for s in series if s], sops,
                       str(ds.get("FrameOfReferenceUID", "")), names)


def _rtstruct_references(ds) -> tuple[list[str], set[str]]:
    series, sops = [], set()
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            for item in study.get("RTReferencedSeriesSequence", []):
                series.append(str(item.get("SeriesInstanceUID", "")))
                sops |= {str(i.ReferencedSOPInstanceUID) for i in item.get("ContourImageSequence", [])}
    for roi in ds.get("ROIContourSequence", []):
        for contour in roi.get("ContourSequence", []):
            sops |= {str(i.ReferencedSOPInstanceUID) for i in contour.get("ContourImageSequence", [])}
    return series, sops


def referenced_series(obj: LabelObject, infos: Sequence[SeriesInfo], folder: str | Path) -> SeriesInfo:
    """The image volume ``obj`` was drawn on: by SeriesInstanceUID, else by the images it references.

    A part of a mixed series (``UID#k``) is chosen by the referenced images. An object whose
    series is not in the folder is an error naming the UID.
    """
    by_images = [i for i in infos if obj.sop_uids & {f.sop_uid for f in i.frames}]
    by_uid = [i for i in infos if i.series_uid in obj.series_uids]
    for candidates in ([i for i in by_uid if i in by_images], by_uid, by_images):
        if candidates:
            return max(candidates, key=lambda i: len(obj.sop_uids & {f.sop_uid for f in i.frames}))
    wanted = ", ".join(obj.series_uids) or "(none given)"
    here = " | ".join(f"{i.number} {i.description or i.modality}: {i.series_uid}" for i in infos) or "none"
    raise MedSegError(f"{obj.modality} {obj.path.name} references image series {wanted}, which is not in {folder} "
                      f"(series there: {here}). Put the referenced series into the folder.")


def select_names(names: Sequence[str], patterns: Sequence[str] | None, what: str) -> list[str]:
    """The names ``patterns`` pick, in pattern order (file order within one pattern), each once."""
    if not patterns:
        return list(dict.fromkeys(names))
    chosen: list[str] = []
    for pattern in patterns:
        matched = [n for n in names if fnmatch.fnmatchcase(n.lower(), pattern.lower())]
        if not matched:
            raise MedSegError(f"No ROI matches '{pattern}' in {what}; its ROIs are: " + ", ".join(names))
        chosen += [n for n in matched if n not in chosen]
    return chosen


def label_map(obj: LabelObject, source: DicomSource, patterns: Sequence[str] | None = None) -> LabelResult:
    """Rasterise (RT-STRUCT) or place (SEG) the selected ROIs on ``source``'s grid, numbered 1..n."""
    if source.resampled:
        raise MedSegError(f"Cannot place {obj.path.name} on a volume interpolated onto an even grid "
                          f"({source.resampled}); its contours belong to the source slices.")
    chosen = select_names(obj.names, patterns, obj.path.name)
    masks = _rtstruct_masks(obj, source, chosen) if obj.modality == "RTSTRUCT" else _seg_masks(obj, source, chosen)
    named = set(patterns or ())
    empty = [name for name, mask, _ in masks if not mask.any()]
    for name in empty:
        if any(fnmatch.fnmatchcase(name.lower(), p.lower()) and _only_match(p, name, chosen) for p in named):
            raise MedSegError(f"ROI '{name}' in {obj.path.name} is empty (no contours inside the image); "
                              "there is nothing to convert.")
    if empty:
        warnings.warn(f"{obj.path.name}: empty ROI(s) left out: {', '.join(empty)} (no contours, or none "
                      "enclosing a voxel centre).", DicomWarning, stacklevel=2)
    return _combine([(n, m, c) for n, m, c in masks if m.any()], empty, obj.path.name)


def _only_match(pattern: str, name: str, chosen: Sequence[str]) -> bool:
    return [n for n in chosen if fnmatch.fnmatchcase(n.lower(), pattern.lower())] == [name]


def _rtstruct_masks(obj: LabelObject, source: DicomSource, chosen: list[str]) -> list[tuple]:
    import pydicom
    rois: dict[str, Roi] = {}
    for roi in read_rois(pydicom.dcmread(str(obj.path))):
        rois.setdefault(roi.name, roi)  # two ROIs of one name: the first (names select ROIs)
    grid = SliceGrid(source)
    return [(name, rasterize_roi(rois[name], grid, obj.path), rois[name].color) for name in chosen]


def _seg_masks(obj: LabelObject, source: DicomSource, chosen: list[str]) -> list[tuple]:
    segments: dict[str, np.ndarray] = {}
    for _, name, mask in read_segment_masks(obj.path, source):
        segments.setdefault(name, mask)
    return [(name, segments[name], None) for name in chosen]


def _combine(masks: list[tuple], empty: list[str], file_name: str) -> LabelResult:
    shape = masks[0][1].shape if masks else None
    if shape is None:
        raise MedSegError(f"{file_name}: every selected ROI is empty; there is nothing to convert.")
    labels = np.zeros(shape, np.uint8 if len(masks) < 256 else np.uint16)
    names, colors, overlaps = {}, {}, {}
    for value, (name, mask, color) in enumerate(masks, start=1):
        taken = int(np.count_nonzero(labels[mask]))
        if taken:
            overlaps[name] = taken
        labels[mask] = value
        names[value] = name
        if color is not None:
            colors[value] = color
    if overlaps:
        warnings.warn(f"{file_name}: overlapping ROIs; " + "; ".join(f"'{n}' took {v} voxels from earlier ROIs"
                                                                    for n, v in overlaps.items())
                      + f" ({OVERLAP_RULE}).", DicomWarning, stacklevel=3)
    return LabelResult(labels[:, ::-1, :].copy(), names, colors, empty, overlaps)


def write_label_result(result: LabelResult, obj: LabelObject, image, path: Path) -> tuple[Path, Path]:
    """The label NIfTI and its JSON sidecar (label value -> name), both written atomically."""
    sidecar = path.with_name(path.name.removesuffix(".nii.gz").removesuffix(".nii") + ".json")
    with atomic_path(sidecar) as tmp_sidecar:
        write_json(tmp_sidecar, sidecar_content(result, obj))
        write_label_image(result.labels, image, path)
    return path, sidecar


def sidecar_content(result: LabelResult, obj: LabelObject) -> dict:
    return {"source": obj.path.name, "modality": obj.modality, "label": obj.label,
            "referenced_series": obj.series_uids,
            "labels": {str(v): n for v, n in result.names.items()},
            "colors": {str(v): list(c) for v, c in result.colors.items()},
            "overlap_rule": OVERLAP_RULE, "overlaps": result.overlaps, "empty_rois_left_out": result.empty}
