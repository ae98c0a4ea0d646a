"""Label maps -> an RT Structure Set referencing the DICOM series they were predicted on.

Contours: for each slice and label, the 0.5 iso-lines of the binary mask (``mask_contours``:
what marching squares draws), so every contour runs half-way between a pixel inside and one
outside and never through a pixel centre; outer boundaries and holes are all written as
CLOSED_PLANAR contours, holes recognised by readers through nesting (even-odd), as DICOM allows.
The file is built with plain pydicom: neither highdicom nor rt-utils is needed to write the
handful of modules an RT-STRUCT has, and pydicom is already required.
"""
from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import MedSegError
from ..fileio import atomic_path
from .colors import label_colors
from .dicom_seg import _repaired, values_to_write
from .dicom_volume import DicomSource, _directions
from .mask_contours import mask_contours

RT_STRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
STUDY_COMPONENT_CLASS = "1.2.840.10008.3.1.2.3.1"  # what RTReferencedStudySequence items reference
def write_rtstruct(labels: np.ndarray, source, label_names: dict[int, str], path: str | Path,
                   colors: dict[int, tuple[int, int, int]] | None = None,
                   label: str = "MedSeg", algorithm: str = "MedSeg nnU-Net") -> Path:
    """Write ``labels`` (z, y, x, image row order) read from ``source`` as one RT-STRUCT file.

    ``source`` is the ``Image`` from ``read_dicom_series`` or its ``DicomSource``. Each label
    value in ``label_names`` (or present in ``labels``) becomes one ROI named after it.
    """
    source = getattr(source, "dicom_source", source)
    if not isinstance(source, DicomSource):
        raise MedSegError("RT-STRUCT output needs a DICOM input: the image was not read from a DICOM series.")
    values = values_to_write(labels, source, label_names, "RT-STRUCT")
    import pydicom  # lazily, as everywhere in images/: `import chimerax.medseg` stays light
    first = source.frames[0]
    blanked: set = set()
    refs = [_repaired(pydicom.dcmread(str(f.path), stop_before_pixels=True), source.series.id, blanked)
            for f in source.frames]
    ds = _base_dataset(refs[0], label, algorithm)
    ds.ReferencedFrameOfReferenceSequence = [_frame_of_reference(refs, source)]
    defaults = label_colors({v: label_names.get(v, f"label {v}") for v in values})
    colors = {**{v: c[:3] for v, c in defaults.items()}, **(colors or {})}
    ds.StructureSetROISequence, ds.ROIContourSequence, ds.RTROIObservationsSequence = [], [], []
    row_dir, col_dir, _ = _directions(first)
    for number, value in enumerate(values, start=1):
        name = str(label_names.get(value, f"label {value}"))[:64]
        ds.StructureSetROISequence.append(_roi_item(number, name, ds.FrameOfReferenceUID, algorithm))
        contours = _label_contours(labels == value, source, refs, row_dir, col_dir)
        ds.ROIContourSequence.append(_roi_contour_item(number, colors[value], contours))
        ds.RTROIObservationsSequence.append(_observation_item(number))
    path = Path(path)
    with atomic_path(path) as tmp:
        ds.save_as(str(tmp), **_save_options())
    return path


def _pydicom_major() -> int:
    import pydicom
    return int(pydicom.__version__.split(".")[0])


def _save_options() -> dict:
    return {"enforce_file_format": True} if _pydicom_major() >= 3 else {"write_like_original": False}


def _base_dataset(ref, label: str, algorithm: str):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(RT_STRUCT_STORAGE)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    if _pydicom_major() < 3:  # pydicom 2.x encodes by these; 3.x takes them from the transfer syntax
        ds.is_little_endian, ds.is_implicit_VR = True, False
    now = datetime.datetime.now()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID, ds.SOPInstanceUID = RT_STRUCT_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTSTRUCT"
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
                    "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName",
                    "FrameOfReferenceUID", "StudyDescription"):
        setattr(ds, keyword, ref.get(keyword, ""))
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = _series_number(ref)
    ds.SeriesDescription = label[:64]
    ds.InstanceNumber = 1
    ds.Manufacturer, ds.ManufacturerModelName, ds.SoftwareVersions = "MedSeg", algorithm[:64], __version__
    ds.StructureSetLabel = label[:16]
    ds.StructureSetDate, ds.StructureSetTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.InstanceCreationDate, ds.InstanceCreationTime = ds.StructureSetDate, ds.StructureSetTime
    ds.ApprovalStatus = "UNAPPROVED"
    return ds


def _series_number(ref) -> int:
    try:
        return int(ref.SeriesNumber) + 2000  # beside the source (DICOM-SEG takes +1000)
    except (AttributeError, TypeError, ValueError):
        return 2000


def _image_item(ref, frame_number: int | None = None):
    from pydicom.dataset import Dataset
    item = Dataset()
    item.ReferencedSOPClassUID = ref.SOPClassUID
    item.ReferencedSOPInstanceUID = ref.SOPInstanceUID
    if frame_number is not None:
        item.ReferencedFrameNumber = frame_number
    return item


def _frame_of_reference(refs: list, source: DicomSource):
    from pydicom.dataset import Dataset
    series = Dataset()
    series.SeriesInstanceUID = refs[0].SeriesInstanceUID
    series.ContourImageSequence = [_image_item(r, _frame_number(f)) for r, f in zip(refs, source.frames)]
    study = Dataset()
    study.ReferencedSOPClassUID = STUDY_COMPONENT_CLASS
    study.ReferencedSOPInstanceUID = refs[0].StudyInstanceUID
    study.RTReferencedSeriesSequence = [series]
    frame = Dataset()
    frame.FrameOfReferenceUID = refs[0].get("FrameOfReferenceUID", "")
    frame.RTReferencedStudySequence = [study]
    return frame


def _frame_number(frame) -> int | None:
    return None if frame.frame is None else frame.frame + 1


def _roi_item(number: int, name: str, frame_uid: str, algorithm: str):
    from pydicom.dataset import Dataset
    item = Dataset()
    item.ROINumber = number
    item.ReferencedFrameOfReferenceUID = frame_uid
    item.ROIName = name
    item.ROIGenerationAlgorithm = "AUTOMATIC"
    item.ROIGenerationDescription = algorithm[:64]
    return item


def _label_contours(mask: np.ndarray, source: DicomSource, refs: list, row_dir, col_dir) -> list:
    """Contour items of one label, slice by slice (DICOM row order: flip the image's rows back)."""
    from pydicom.dataset import Dataset
    row_spacing, col_spacing = source.frames[0].pixel_spacing
    items = []
    for k, frame in enumerate(source.frames):
        plane = mask[k, ::-1, :]
        if not plane.any():
            continue
        for pixels in mask_contours(plane):
            points = (np.asarray(frame.position) + np.outer(pixels[:, 0] * col_spacing, row_dir)
                      + np.outer(pixels[:, 1] * row_spacing, col_dir))
            item = Dataset()
            item.ContourImageSequence = [_image_item(refs[k], _frame_number(frame))]
            item.ContourGeometricType = "CLOSED_PLANAR"
            item.NumberOfContourPoints = len(points)
            item.ContourData = [f"{v:.4f}" for v in points.ravel()]
            items.append(item)
    return items


def _roi_contour_item(number: int, color: tuple[int, int, int], contours: list):
    from pydicom.dataset import Dataset
    item = Dataset()
    item.ReferencedROINumber = number
    item.ROIDisplayColor = [int(c) for c in color[:3]]
    item.ContourSequence = contours
    return item


def _observation_item(number: int):
    from pydicom.dataset import Dataset
    item = Dataset()
    item.ObservationNumber = number
    item.ReferencedROINumber = number
    item.RTROIInterpretedType = "ORGAN"
    item.ROIInterpreter = ""
    return item
