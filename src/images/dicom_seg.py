"""Label maps back to DICOM: a DICOM-SEG object that references the series it was made from.

Writing uses highdicom (it builds the many attributes DICOM-SEG needs correctly); reading back
uses plain pydicom and places each segment frame by its ImagePositionPatient, so a round trip
checks the geometry independently of the writer.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import MedSegError
from ..fileio import atomic_path
from .dicom_discovery import DicomWarning
from .dicom_volume import DicomSource, _directions

_LOCAL_SCHEME = "99MEDSEG"  # a local coding scheme (the "99" prefix is DICOM's rule for private schemes)


def _highdicom():
    try:
        import highdicom
    except ImportError as exc:
        raise MedSegError("Writing DICOM-SEG needs highdicom: pip install 'ChimeraX-MedSeg[dicom]'.") from exc
    return highdicom


def _source_planes(labels: np.ndarray, source: DicomSource) -> tuple[list, np.ndarray]:
    """Source datasets (headers) and the label planes in their frame order, rows as in DICOM."""
    import pydicom
    paths = sorted({f.path for f in source.frames})
    blanked: set = set()
    datasets = {p: _repaired(pydicom.dcmread(str(p), stop_before_pixels=True), source.series.id, blanked)
                for p in paths}
    if blanked:
        warnings.warn(f"The source series has no {' or '.join(sorted(blanked))} (anonymized?); the DICOM-SEG "
                      "references UIDs derived from the series instead, so a PACS may not link it to the images.",
                      DicomWarning, stacklevel=4)
    first = source.frames[0]
    if first.frame is None:  # single-frame images: one plane per source file, in the given order
        planes = np.zeros((len(source.frames), first.rows, first.columns), np.uint16)
        for k in range(len(source.frames)):
            planes[k] = labels[k, ::-1, :]
        return [datasets[f.path] for f in source.frames], planes
    if len(paths) != 1:
        raise MedSegError("DICOM-SEG output supports a volume from one multi-frame object or from single-frame "
                          "images; this volume combines several multi-frame files.")
    # a multi-frame source may hold other volumes too (time points...): give only this volume's
    # planes, each with its position, so the SEG frames are placed exactly on them
    planes = np.stack([labels[k, ::-1, :] for k in range(len(source.frames))]).astype(np.uint16)
    return [datasets[paths[0]]], planes


def _repaired(dataset, series_key: str, blanked: set):
    """Fill identifiers that anonymizers blank out but DICOM-SEG must copy (in memory only).

    Blank study/series UIDs are replaced by UIDs derived from the series, the same for every
    file and every run; their names are added to ``blanked`` so the caller can warn once.
    """
    from pydicom.uid import generate_uid
    if not dataset.get("SOPClassUID"):
        dataset.SOPClassUID = dataset.file_meta.get("MediaStorageSOPClassUID", "")
    if not dataset.get("SOPInstanceUID"):
        dataset.SOPInstanceUID = dataset.file_meta.get("MediaStorageSOPInstanceUID", "")
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
        if not dataset.get(keyword):
            setattr(dataset, keyword, generate_uid(entropy_srcs=[series_key, keyword]))
            blanked.add(keyword)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        if keyword not in dataset:
            setattr(dataset, keyword, "")
    return dataset


def _descriptions(hd, values: list[int], label_names: dict[int, str], algorithm: str):
    from pydicom.sr.codedict import codes
    algorithm_id = hd.AlgorithmIdentificationSequence(
        name=algorithm[:64], version=__version__, family=codes.cid7162.ArtificialIntelligence)
    category = hd.sr.CodedConcept(value="91723000", scheme_designator="SCT", meaning="Anatomical Structure")
    out = []
    for number, value in enumerate(values, start=1):
        name = str(label_names.get(value, f"label {value}"))
        out.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=name[:64], segmented_property_category=category,
            segmented_property_type=hd.sr.CodedConcept(value=f"L{value}", scheme_designator=_LOCAL_SCHEME,
                                                       meaning=name[:64]),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm_id,
            tracking_id=f"label {value}", tracking_uid=hd.UID()))
    return out


def values_to_write(labels: np.ndarray, source: DicomSource, label_names: dict[int, str], what: str) -> list[int]:
    """The label values a DICOM output (``what``: DICOM-SEG, RT-STRUCT) will hold, after the checks both
    need: the grid is the source's own slices, the shape fits, no negative values, something to write."""
    if source.resampled:
        raise MedSegError(f"Cannot write {what}: the volume was interpolated onto an even grid "
                          f"({source.resampled}), so its voxels are not the source slices. Write NIfTI output instead.")
    expected = (len(source.frames), source.frames[0].rows, source.frames[0].columns)
    if labels.shape != expected:
        raise MedSegError(f"Label map shape {labels.shape} does not match the DICOM volume {expected} (z, y, x).")
    if labels.min(initial=0) < 0:
        raise MedSegError(f"Label maps written as {what} must not hold negative values.")
    values = sorted({int(v) for v in np.unique(labels) if v != 0} | {int(v) for v in label_names if int(v) != 0})
    if not values:
        raise MedSegError("No labels to write: the label map is empty and no label names were given.")
    return values


def write_segmentation(labels: np.ndarray, source: DicomSource, label_names: dict[int, str], path: Path,
                       algorithm: str = "MedSeg nnU-Net", series_description: str = "MedSeg segmentation") -> Path:
    """Write ``labels`` (z, y, x) on the grid read from ``source`` as one DICOM-SEG file."""
    values = values_to_write(labels, source, label_names, "DICOM-SEG")
    hd = _highdicom()
    datasets, planes = _source_planes(labels, source)
    segment_of = np.zeros(max(values) + 1, np.uint16)
    segment_of[values] = np.arange(1, len(values) + 1)  # DICOM-SEG numbers segments 1..n without gaps
    planes = segment_of[np.clip(planes, 0, max(values))]
    seg = hd.seg.Segmentation(
        source_images=datasets, pixel_array=planes, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        **_plane_geometry(hd, source),
        segment_descriptions=_descriptions(hd, values, label_names, algorithm),
        series_instance_uid=hd.UID(), series_number=_series_number(datasets[0]), sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="MedSeg", manufacturer_model_name=algorithm[:64],
        software_versions=__version__, device_serial_number="0", series_description=series_description[:64],
        omit_empty_frames=bool(planes.any()))
    path = Path(path)
    with atomic_path(path) as tmp:
        seg.save_as(str(tmp))
    return path


def _plane_geometry(hd, source: DicomSource) -> dict:
    """Explicit plane positions for multi-frame sources (single-frame ones carry their own)."""
    first = source.frames[0]
    if first.frame is None:
        return {}
    return {
        "plane_positions": [hd.PlanePositionSequence("PATIENT", list(f.position)) for f in source.frames],
        "plane_orientation": hd.PlaneOrientationSequence("PATIENT", list(first.orientation)),
        "pixel_measures": hd.PixelMeasuresSequence(list(first.pixel_spacing), first.thickness or 1.0),
    }


def _series_number(dataset) -> int:
    try:
        return int(dataset.SeriesNumber) + 1000  # beside the source series in a viewer's list
    except (AttributeError, TypeError, ValueError):
        return 1000


def read_segmentation(path: str | Path, source: DicomSource) -> tuple[np.ndarray, dict[int, str]]:
    """Read a DICOM-SEG back onto ``source``'s grid: labels (z, y, x) and {label value: name}.

    Frames are placed by their ImagePositionPatient on the source slices; a frame that lies on
    no source slice is an error, so a wrong geometry cannot pass silently. Where segments
    overlap, the later segment keeps the voxels (with a warning saying how many).
    """
    segments = read_segment_masks(path, source)
    labels = np.zeros((len(source.frames), source.frames[0].rows, source.frames[0].columns), np.uint16)
    for value, name, mask in segments:
        clash = int(np.count_nonzero(labels[mask]))
        if clash:
            warnings.warn(f"{Path(path).name}: segment '{name}' overlaps earlier segments in {clash} voxels; "
                          "the later segment keeps them.", DicomWarning, stacklevel=2)
        labels[mask] = value
    return labels[:, ::-1, :].copy(), {value: name for value, name, _ in segments}


def read_segment_masks(path: str | Path, source: DicomSource) -> list[tuple[int, str, np.ndarray]]:
    """Each segment of a DICOM-SEG as (label value, name, mask (slices, rows, columns) in DICOM row order).

    The label value is the one MedSeg wrote (TrackingID ``label N``), else the segment number.
    A FRACTIONAL segmentation counts a voxel in at half the maximum value or more.
    """
    import pydicom
    ds = pydicom.dcmread(str(path))
    if str(ds.get("Modality")) != "SEG":
        raise MedSegError(f"{path} is not a DICOM-SEG object (modality {ds.get('Modality')}).")
    value_of, names = {}, {}
    for item in ds.SegmentSequence:
        tracking = str(item.get("TrackingID", ""))
        number = int(item.SegmentNumber)
        value_of[number] = int(tracking.split()[-1]) if _is_label_tracking(tracking) else number
        names[number] = str(item.get("SegmentLabel", "") or f"segment {number}")
    first = source.frames[0]
    _, _, normal = _directions(first)
    offsets = np.array([np.dot(f.position, normal) for f in source.frames])
    masks = {number: np.zeros((len(source.frames), first.rows, first.columns), bool) for number in names}
    pixels = ds.pixel_array.reshape(-1, int(ds.Rows), int(ds.Columns))
    threshold = 0.5
    if str(ds.get("SegmentationType", "BINARY")).upper() == "FRACTIONAL":
        threshold = float(ds.get("MaximumFractionalValue", 255)) / 2
    shared = ds.get("SharedFunctionalGroupsSequence")
    # with a single segment, writers (highdicom) put its reference in the shared group
    shared_segment = shared[0].get("SegmentIdentificationSequence") if shared else None
    for index, group in enumerate(ds.PerFrameFunctionalGroupsSequence):
        position = np.array([float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient])
        k = int(np.argmin(np.abs(offsets - np.dot(position, normal))))
        if np.linalg.norm(position - np.asarray(source.frames[k].position)) > 1e-3:
            raise MedSegError(f"Frame {index + 1} of {path} lies at {position.tolist()}, "
                              "on no slice of the source series.")
        segment = group.get("SegmentIdentificationSequence") or shared_segment
        if not segment:
            continue  # an empty frame written for a segment-free label map
        number = int(segment[0].ReferencedSegmentNumber)
        if number not in masks:
            raise MedSegError(f"Frame {index + 1} of {path} refers to segment {number}, "
                              "which the SEG does not declare.")
        masks[number][k] |= pixels[index] >= threshold
    return [(value_of[n], names[n], masks[n]) for n in names]


def _is_label_tracking(tracking: str) -> bool:
    words = tracking.split()
    return len(words) == 2 and words[0] == "label" and words[1].isdigit()
