"""Find DICOM image series in a folder tree and split them into volumes.

Every file is tried (clinical exports have any names, or none); files that are not DICOM are
ignored. Frames are grouped by SeriesInstanceUID and, inside a series, by orientation, echo,
temporal position and stack, so a localizer, a second echo or a later time point never gets
stacked into the same volume. Only headers are read here (no pixel data), so listing is fast.
"""
from __future__ import annotations

import os
import warnings
import zlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, overload

from ..errors import MedSegError, one_line

# Objects that carry no image volume to segment (segmentations, structure sets, reports...).
_NON_IMAGE_MODALITIES = {"SEG", "RTSTRUCT", "RTPLAN", "RTRECORD", "SR", "PR", "KO", "REG", "DOC"}
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory: a catalogue, not an image


class DicomWarning(UserWarning):
    """Something odd about the DICOM input that did not stop the work (shown to the user)."""


@dataclass
class DicomFrame:
    """One 2D image: a single-frame file, or one frame of a multi-frame (enhanced) file."""

    path: Path
    frame: int | None            # frame index inside a multi-frame file, else None
    sop_uid: str
    rows: int
    columns: int
    orientation: tuple[float, ...]          # row direction (3), column direction (3), LPS
    position: tuple[float, float, float]    # centre of the first transmitted pixel, LPS mm
    pixel_spacing: tuple[float, float]      # (between rows, between columns) mm
    slope: float = 1.0
    intercept: float = 0.0
    thickness: float | None = None
    echo: str = ""
    temporal: str = ""
    stack: str = ""
    acquisition: str = ""
    samples_per_pixel: int = 1
    mosaic: bool = False          # a Siemens mosaic: many slices tiled in one image


@dataclass
class SeriesInfo:
    """One volume that can be read: a whole series, or one part of a mixed series."""

    id: str                      # selector: SeriesInstanceUID, plus "#k" for a part of a series
    series_uid: str
    number: int | None
    description: str
    modality: str
    part: str                    # what tells this part apart ("echo 2", ...) or ""
    frames: list[DicomFrame] = field(repr=False, default_factory=list)
    study_uid: str = ""
    frame_of_reference_uid: str = ""

    @property
    def num_slices(self) -> int:
        return len(self.frames)

    @property
    def size(self) -> tuple[int, int, int]:
        """(columns, rows, slices) of the first frame, as DICOM viewers show it."""
        first = self.frames[0]
        return first.columns, first.rows, len(self.frames)

    @property
    def files(self) -> list[Path]:
        return sorted({f.path for f in self.frames})

    def summary(self) -> str:
        number = "-" if self.number is None else str(self.number)
        cols, rows, slices = self.size
        part = f" [{self.part}]" if self.part else ""
        return (f"#{number:>4}  {self.modality:<3} {cols}x{rows}x{slices:<4} "
                f"{self.description or '(no description)'}{part}  id={self.id}")


def _pydicom():
    import pydicom  # lazily: `import chimerax.medseg` stays light
    return pydicom


def read_header(path: Path):
    """The dataset without pixel data, or None when ``path`` is not a DICOM file."""
    pydicom = _pydicom()
    try:
        return pydicom.dcmread(str(path), stop_before_pixels=True)
    except pydicom.errors.InvalidDicomError:
        return None


def iter_files(folder: Path) -> Iterable[Path]:
    """Regular files under ``folder``; anything else (a FIFO would block its reader forever) is
    skipped and named in a warning."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if name.startswith("."):
                continue
            if not path.is_file():
                warnings.warn(f"Skipped {path}: not a regular file (a FIFO, device, socket or broken link).",
                              DicomWarning, stacklevel=2)
                continue
            yield path


@overload
def _floats(value, n: Literal[2]) -> tuple[float, float] | None: ...
@overload
def _floats(value, n: Literal[3]) -> tuple[float, float, float] | None: ...
@overload
def _floats(value, n: int) -> tuple[float, ...] | None: ...
def _floats(value, n: int) -> tuple[float, ...] | None:
    """``n`` floats from a DICOM multi-value, or None if it is not that."""
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _first(item, sequence: str):
    seq = item.get(sequence) if item is not None else None
    return seq[0] if seq else None


def _frame_value(per_frame, shared, sequence: str, keyword: str):
    """A functional-group attribute, per-frame first, then shared (enhanced objects)."""
    for group in (per_frame, shared):
        item = _first(group, sequence)
        if item is not None and keyword in item:
            return item.get(keyword)
    return None


def frames_of(ds, path: Path) -> list[DicomFrame]:
    """All 2D frames of one dataset with their geometry; [] when it has no usable geometry."""
    rows, columns = ds.get("Rows"), ds.get("Columns")
    if not rows or not columns:
        return []
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    per_frame_groups = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame_groups is not None:
        return _enhanced_frames(ds, path, rows, columns, spp, per_frame_groups)
    orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    position = _floats(ds.get("ImagePositionPatient"), 3)
    spacing = _floats(ds.get("PixelSpacing"), 2)
    if orientation is None or position is None or spacing is None or n_frames != 1:
        return []
    return [DicomFrame(
        path=path, frame=None, sop_uid=str(ds.get("SOPInstanceUID", path.name)), rows=int(rows),
        columns=int(columns), orientation=orientation, position=position, pixel_spacing=spacing,
        slope=float(ds.get("RescaleSlope", 1) or 1), intercept=float(ds.get("RescaleIntercept", 0) or 0),
        thickness=_optional_float(ds.get("SliceThickness")), echo=_text(ds.get("EchoNumbers")),
        temporal=_text(ds.get("TemporalPositionIdentifier")), acquisition=_text(ds.get("AcquisitionNumber")),
        samples_per_pixel=spp, mosaic="MOSAIC" in [str(v).upper() for v in ds.get("ImageType", [])])]


def _enhanced_frames(ds, path, rows, columns, spp, per_frame_groups) -> list[DicomFrame]:
    shared = _first(ds, "SharedFunctionalGroupsSequence")
    frames = []
    for index, group in enumerate(per_frame_groups):
        orientation = _floats(_frame_value(group, shared, "PlaneOrientationSequence", "ImageOrientationPatient"), 6)
        position = _floats(_frame_value(group, shared, "PlanePositionSequence", "ImagePositionPatient"), 3)
        spacing = _floats(_frame_value(group, shared, "PixelMeasuresSequence", "PixelSpacing"), 2)
        if orientation is None or position is None or spacing is None:
            return []
        slope = _frame_value(group, shared, "PixelValueTransformationSequence", "RescaleSlope")
        intercept = _frame_value(group, shared, "PixelValueTransformationSequence", "RescaleIntercept")
        content = _first(group, "FrameContentSequence")
        echo = _frame_value(group, shared, "MREchoSequence", "EffectiveEchoTime")
        frames.append(DicomFrame(
            path=path, frame=index, sop_uid=str(ds.get("SOPInstanceUID", path.name)), rows=int(rows),
            columns=int(columns), orientation=orientation, position=position, pixel_spacing=spacing,
            slope=float(slope) if slope not in (None, "") else 1.0,
            intercept=float(intercept) if intercept not in (None, "") else 0.0,
            thickness=_optional_float(_frame_value(group, shared, "PixelMeasuresSequence", "SliceThickness")),
            echo=_text(echo), temporal=_text(content.get("TemporalPositionIndex") if content else None),
            stack=_text(content.get("StackID") if content else None), samples_per_pixel=spp))
    return frames


def _optional_float(value) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "/".join(str(v) for v in value)
    return str(value)


def _orientation_key(orientation: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(round(v, 3) + 0.0 for v in orientation)  # +0.0 folds -0.0 into 0.0


def _file_frames(ds, path: Path, damaged: list[str], no_geometry: list[str]):
    """(series key, frames, series facts) of one DICOM file, or None when it holds no image volume."""
    if "SeriesInstanceUID" not in ds:
        if str(ds.file_meta.get("MediaStorageSOPClassUID", "")) != _DICOMDIR_CLASS:
            damaged.append(f"{path.name} (incomplete: no SeriesInstanceUID)")
        return None
    if str(ds.get("Modality", "")).upper() in _NON_IMAGE_MODALITIES:
        return None
    frames = frames_of(ds, path)
    if not frames:
        if ds.get("Rows"):
            no_geometry.append(path.name)
        return None
    meta = {"number": _int_or_none(ds.get("SeriesNumber")), "description": str(ds.get("SeriesDescription", "")),
            "modality": str(ds.get("Modality", "")), "study_uid": str(ds.get("StudyInstanceUID", "")),
            "frame_of_reference_uid": str(ds.get("FrameOfReferenceUID", ""))}
    return _series_key(ds), frames, meta


def scan_folder(folder: str | os.PathLike) -> list[SeriesInfo]:
    """Every readable image volume under ``folder``, ordered by series number then id."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MedSegError(f"DICOM folder not found: {folder}")
    by_series: dict[str, list[DicomFrame]] = defaultdict(list)
    series_meta: dict[str, dict] = {}
    damaged: list[str] = []
    no_geometry: list[str] = []
    for path in iter_files(folder):
        try:
            ds = read_header(path)
            if ds is None:
                continue  # not DICOM
            # pydicom parses elements when they are first used: a damaged one fails here, not above
            found = _file_frames(ds, path, damaged, no_geometry)
        except Exception as exc:  # a damaged file among good ones: note it, keep the rest
            damaged.append(f"{path.name} ({type(exc).__name__}: {one_line(exc, 120)})")
            continue
        if found is None:
            continue
        uid, frames, meta = found
        by_series[uid].extend(frames)
        series_meta.setdefault(uid, meta)
    if damaged:
        warnings.warn(f"Skipped {len(damaged)} damaged DICOM file(s) in {folder}: " + "; ".join(damaged[:5]),
                      DicomWarning, stacklevel=2)
    if no_geometry:
        warnings.warn(f"Skipped {len(no_geometry)} DICOM image(s) without patient geometry (position/orientation/"
                      f"pixel spacing), e.g. {no_geometry[0]}; they cannot form a 3D volume.",
                      DicomWarning, stacklevel=2)
    infos = []
    for uid, frames in by_series.items():
        infos.extend(_split_series(uid, frames, series_meta[uid]))
    infos.sort(key=lambda s: (s.number if s.number is not None else 1 << 30, s.id))
    return infos


def _series_key(ds) -> str:
    """The SeriesInstanceUID, or a stable stand-in when an anonymizer blanked it."""
    uid = str(ds.get("SeriesInstanceUID", "") or "").strip()
    if uid:
        return uid
    key = "|".join(str(ds.get(k, "")) for k in ("StudyInstanceUID", "FrameOfReferenceUID", "SeriesNumber",
                                                "SeriesDescription", "Modality"))
    return f"nouid-{zlib.crc32(key.encode()):08x}"


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _split_series(uid: str, frames: list[DicomFrame], meta: dict) -> list[SeriesInfo]:
    """Split a series into volumes that can be stacked: one per orientation/echo/time/stack."""
    groups: dict[tuple, list[DicomFrame]] = defaultdict(list)
    for f in frames:
        groups[(_orientation_key(f.orientation), f.echo, f.temporal, f.stack)].append(f)
    groups = _split_repeated_acquisitions(groups)
    # bigger parts first (the stack, not its localizer), then echo/time/stack/acquisition in number order
    keys = sorted(groups, key=lambda k: (-len(groups[k]), [_natural(v) for v in k[1:]], k[0]))
    infos = []
    for index, key in enumerate(keys, start=1):
        part = _describe_part(key, keys) if len(keys) > 1 else ""
        infos.append(SeriesInfo(id=uid if len(keys) == 1 else f"{uid}#{index}", series_uid=uid, part=part,
                                frames=groups[key], **meta))
    return infos


def _natural(value: str) -> tuple:
    """Sort key that puts "2" before "10"."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def _split_repeated_acquisitions(groups: dict) -> dict:
    """Frames at one position repeated in several acquisitions become one volume each."""
    out = {}
    for key, frames in groups.items():
        positions = [tuple(round(p, 2) for p in f.position) for f in frames]
        if len(set(positions)) < len(positions) and len({f.acquisition for f in frames}) > 1:
            for acquisition in sorted({f.acquisition for f in frames}):
                out[key + (acquisition,)] = [f for f in frames if f.acquisition == acquisition]
        else:
            out[key + ("",)] = frames
    return out


def _describe_part(key: tuple, keys: list[tuple]) -> str:
    words = []
    if len({k[0] for k in keys}) > 1:
        words.append("orientation " + " ".join(f"{v:g}" for v in key[0]))
    for position, name in ((1, "echo"), (2, "time"), (3, "stack"), (4, "acquisition")):
        if len({k[position] for k in keys}) > 1:
            words.append(f"{name} {key[position] or '-'}")
    return ", ".join(words)


def select_series(infos: list[SeriesInfo], series: str | None, folder: Path) -> SeriesInfo:
    """The one volume ``series`` names (id, SeriesInstanceUID, number or description)."""
    if not infos:
        raise MedSegError(f"No DICOM image series found in {folder}: it holds no DICOM files with image "
                          "geometry. Point to the folder that holds the exported series.")
    if series is None:
        if len(infos) == 1:
            return infos[0]
        raise MedSegError(f"{folder} holds {len(infos)} DICOM image volumes; choose one by number, description "
                          "or id: " + " | ".join(i.summary() for i in infos))
    wanted = str(series).strip()
    for matcher in (lambda i: i.id == wanted,
                    lambda i: i.series_uid == wanted,
                    lambda i: i.number is not None and (str(i.number) == wanted or
                                                        f"{i.number}#{i.id.rpartition('#')[2]}" == wanted),
                    lambda i: i.description.lower() == wanted.lower(),
                    lambda i: wanted.lower() in i.description.lower()):
        found = [i for i in infos if matcher(i)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise MedSegError(f"'{wanted}' matches {len(found)} DICOM volumes in {folder}; choose one by id: "
                              + " | ".join(i.summary() for i in found))
    raise MedSegError(f"No DICOM series '{wanted}' in {folder}. Available: "
                      + " | ".join(i.summary() for i in infos))
