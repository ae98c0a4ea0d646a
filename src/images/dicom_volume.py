"""Stack the frames of one DICOM volume into a 3D array with an exact NIfTI (RAS) affine.

Voxel order is dcm2niix's, so a volume read here lies on the same grid as dcm2niix's NIfTI
of the same series: i = DICOM column, j = DICOM row counted from the last row, k = slices
ascending along the slice normal (row direction x column direction). Slice order and spacing
come from ImagePositionPatient projected on that normal, never from file names, instance
numbers or SliceThickness (which is the slab thickness, not the distance between slices).
"""
from __future__ import annotations

import math
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MedSegError, one_line
from ..memory import array_bytes, check_memory
from .dicom_discovery import DicomFrame, DicomWarning, SeriesInfo

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_MAX_TILT_DEG = 0.2  # below this a sheared stack is rounding noise, not gantry tilt


@dataclass
class DicomSource:
    """What a volume was read from, kept so results can be written back as DICOM-SEG.

    ``frames[k]`` is the source frame of slice k of the array; ``resampled`` says why the
    voxels are not the source slices one to one (then DICOM-SEG cannot reference them).
    """

    folder: Path
    series: SeriesInfo
    frames: list[DicomFrame]
    resampled: str | None = None


@dataclass
class StackGeometry:
    frames: list[DicomFrame]       # sorted along the normal
    offsets: np.ndarray            # each frame's position along the normal, mm
    spacing: tuple[float, float, float]  # (between slices, between rows, between columns)
    affine: np.ndarray             # 4x4 RAS, dcm2niix voxel order
    uneven: str | None = None      # why the slices are not evenly spaced, if they are not


def _directions(frame: DicomFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    row = np.array(frame.orientation[:3], float)
    col = np.array(frame.orientation[3:], float)
    row /= np.linalg.norm(row)
    col /= np.linalg.norm(col)
    return row, col, np.cross(row, col)


def check_consistent(info: SeriesInfo) -> None:
    """Refuse a volume whose frames differ in size or pixel spacing (they cannot be stacked)."""
    first = info.frames[0]
    for attribute, what in (("rows", "rows"), ("columns", "columns"), ("samples_per_pixel", "samples per pixel")):
        values = defaultdict(list)
        for f in info.frames:
            values[getattr(f, attribute)].append(f.path.name)
        if len(values) > 1:
            # most common first, so the odd files are named last (and the message is stable)
            ranked = sorted(values.items(), key=lambda item: (-len(item[1]), item[0]))
            detail = "; ".join(f"{v}: {len(names)} image(s), e.g. {sorted(names)[0]}" for v, names in ranked)
            raise MedSegError(f"DICOM series {info.number} ({info.description}) mixes images with different numbers "
                              f"of {what} ({detail}); they cannot form one volume. Remove the odd files or "
                              "export the series again.")
    spacings = {tuple(round(s, 4) for s in f.pixel_spacing) for f in info.frames}
    if len(spacings) > 1:
        raise MedSegError(f"DICOM series {info.number} ({info.description}) mixes pixel spacings {sorted(spacings)}; "
                          "its images cannot form one volume. Export the series again or choose another.")
    if first.mosaic:
        raise MedSegError(f"DICOM series {info.number} ({info.description}) holds Siemens mosaic images (many slices "
                          "tiled in one image), which MedSeg does not unpack. "
                          "Convert it with dcm2niix and use the NIfTI.")
    if first.samples_per_pixel != 1:
        raise MedSegError(f"DICOM series {info.number} ({info.description}) holds colour images "
                          f"({first.samples_per_pixel} samples per pixel); only greyscale volumes can be segmented.")


def stack_geometry(info: SeriesInfo) -> StackGeometry:
    """Sort the frames along the slice normal and work out spacing and affine."""
    check_consistent(info)
    row, col, normal = _directions(info.frames[0])
    offsets = np.array([np.dot(f.position, normal) for f in info.frames])
    order = np.argsort(offsets, kind="stable")
    frames = [info.frames[i] for i in order]
    offsets = offsets[order]
    name = f"DICOM series {info.number} ({info.description or info.id})"
    _refuse_duplicates(frames, offsets, name)
    row_spacing, col_spacing = frames[0].pixel_spacing
    uneven = None
    if len(frames) > 1:
        gaps = np.diff(offsets)
        slice_spacing = float((offsets[-1] - offsets[0]) / (len(frames) - 1))
        uneven = _describe_uneven(gaps)
        _refuse_tilt(frames, normal, name)
    else:
        slice_spacing = float(frames[0].thickness or 1.0)
    lps = np.eye(4)
    lps[:3, 0] = row * col_spacing
    lps[:3, 1] = -col * row_spacing                    # rows counted from the last one (dcm2niix)
    lps[:3, 2] = normal * slice_spacing
    lps[:3, 3] = np.asarray(frames[0].position) + (frames[0].rows - 1) * row_spacing * col
    return StackGeometry(frames, offsets, (slice_spacing, row_spacing, col_spacing), LPS_TO_RAS @ lps, uneven)


def _refuse_duplicates(frames: list[DicomFrame], offsets: np.ndarray, name: str) -> None:
    same = np.flatnonzero(np.diff(offsets) < 1e-3)
    if same.size:
        a, b = frames[same[0]], frames[same[0] + 1]
        raise MedSegError(f"{name} has {same.size + 1} images at the same slice position (e.g. {a.path.name} and "
                          f"{b.path.name}): it mixes several volumes that no echo/time/acquisition tag tells apart. "
                          "Export each volume as its own series, or remove the duplicates.")


def _describe_uneven(gaps: np.ndarray) -> str | None:
    """None for evenly spaced slices, else what is wrong (missing slices or varying gaps)."""
    typical = float(np.median(gaps))
    if np.all(np.abs(gaps - typical) <= max(0.01, 0.01 * typical)):
        return None
    smallest = float(gaps.min())
    multiples = gaps / smallest
    if np.allclose(multiples, np.round(multiples), atol=0.02):
        missing = int(np.round(multiples).sum() - len(gaps))
        return f"{missing} slice(s) appear to be missing (gaps of {sorted({round(float(g), 3) for g in gaps})} mm)"
    return f"slice gaps vary from {gaps.min():.3f} to {gaps.max():.3f} mm"


def _refuse_tilt(frames: list[DicomFrame], normal: np.ndarray, name: str) -> None:
    step = (np.asarray(frames[-1].position) - np.asarray(frames[0].position)) / (len(frames) - 1)
    along = float(np.dot(step, normal))
    across = float(np.linalg.norm(step - along * normal))
    angle = math.degrees(math.atan2(across, abs(along)))
    if angle > _MAX_TILT_DEG:
        raise MedSegError(f"{name} was acquired with a gantry tilt of {angle:.2f} degrees: its slices are sheared, "
                          "not stacked straight along their normal, so a plain volume would misplace anatomy. "
                          "Correct the tilt first (e.g. dcm2niix writes a tilt-corrected '_Tilt_1' NIfTI) and "
                          "segment that NIfTI file.")


def read_pixels(frames: list[DicomFrame]) -> np.ndarray:
    """Decoded, rescaled voxels of ``frames`` in their order: float32 (slices, rows, columns)."""
    by_path: dict[Path, list[int]] = defaultdict(list)
    for index, frame in enumerate(frames):
        by_path[frame.path].append(index)
    shape = (len(frames), frames[0].rows, frames[0].columns)
    # the array, its flipped copy in the Image, and one decoded file at a time
    check_memory(array_bytes(shape, 4) * 2, f"The DICOM volume ({' x '.join(map(str, shape))} voxels)",
                 "Its Rows/Columns tags may be damaged; otherwise choose a smaller series.")
    out = np.empty(shape, dtype=np.float32)
    for path, indices in by_path.items():
        pixels = _decode(path)
        for index in indices:
            frame = frames[index]
            plane = pixels[frame.frame] if frame.frame is not None else pixels.reshape(pixels.shape[-2:])
            if plane.shape != (frame.rows, frame.columns):
                raise MedSegError(f"DICOM file {path} has pixel data of shape {plane.shape}, but its header says "
                                  f"{frame.rows}x{frame.columns}; the file is damaged. Remove it or export again.")
            out[index] = plane.astype(np.float64) * frame.slope + frame.intercept
    return out


def _decode(path: Path) -> np.ndarray:
    """All frames of one file as stored (multi-frame: (frames, rows, columns))."""
    import pydicom
    try:
        ds = pydicom.dcmread(str(path))
        return _decode_dataset(ds, path)
    except MedSegError:
        raise
    except Exception as exc:  # pydicom parses lazily: a damaged element can fail at any access
        raise MedSegError(f"DICOM file {path} is damaged and cannot be read ({type(exc).__name__}: "
                          f"{one_line(exc, 160)}). Remove it or export the series again.") from exc


def _decode_dataset(ds, path: Path) -> np.ndarray:
    if "PixelData" not in ds:
        raise MedSegError(f"DICOM file {path} has no pixel data; it is damaged or not an image. Remove it.")
    frames = _int_tag(ds, "NumberOfFrames", 1, path)
    _check_payload_length(ds, frames, path)
    try:
        pixels = ds.pixel_array
    except Exception as exc:
        pixels = _decode_with_simpleitk(path, ds, exc)
    expected = (frames, int(ds.Rows), int(ds.Columns))
    if pixels.size != math.prod(expected):  # whichever decoder ran, the voxels must be what the header says
        raise MedSegError(f"DICOM file {path} decodes to {pixels.size} pixels, but its header promises "
                          f"{' x '.join(map(str, expected))}; the file is damaged. Remove it or export again.")
    if frames > 1 and pixels.ndim == 2:
        raise MedSegError(f"DICOM file {path} declares {frames} frames but holds one; it is damaged.")
    return pixels if frames > 1 else pixels.reshape((1,) + pixels.shape[-2:])


def _int_tag(ds, keyword: str, default: int, path: Path) -> int:
    try:
        return int(ds.get(keyword, default) or default)
    except (TypeError, ValueError):
        raise MedSegError(f"DICOM file {path} has an unreadable {keyword} ({ds.get(keyword)!r}); "
                          "it is damaged.") from None


def _check_payload_length(ds, frames: int, path: Path) -> None:
    """Uncompressed pixel data must hold exactly the bytes the header promises (plus one pad byte):
    a decoder that pads or cuts a short payload would hand over a volume of garbage."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is not None and getattr(syntax, "is_compressed", False):
        return  # encapsulated fragments: the decoded size is checked after decoding
    rows, columns = _int_tag(ds, "Rows", 0, path), _int_tag(ds, "Columns", 0, path)
    bits, samples = _int_tag(ds, "BitsAllocated", 16, path), _int_tag(ds, "SamplesPerPixel", 1, path)
    pixels = rows * columns * frames * samples
    expected = (pixels + 7) // 8 if bits == 1 else pixels * ((bits + 7) // 8)
    actual = len(ds.PixelData)
    if actual not in (expected, expected + (expected % 2)):
        side = "shorter" if actual < expected else "longer"
        raise MedSegError(f"DICOM file {path} has {actual} bytes of pixel data, {side} than the {expected} its header "
                          f"promises ({frames} frame(s) of {rows} x {columns}, {bits} bits); the file is damaged. "
                          "Remove it or export the series again.")


def _decode_with_simpleitk(path: Path, ds, error: Exception) -> np.ndarray:
    """GDCM inside SimpleITK decodes syntaxes pydicom may lack a plug-in for (JPEG lossless...)."""
    syntax = ds.file_meta.get("TransferSyntaxUID", "unknown")
    syntax_name = getattr(syntax, "name", str(syntax))
    try:
        import SimpleITK as sitk
        array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    except Exception:
        if getattr(syntax, "is_compressed", False):
            raise MedSegError(f"Cannot decode the pixel data of {path} (transfer syntax {syntax_name}): {error}. "
                              "The file is damaged, or a decoder is missing: pip install 'ChimeraX-MedSeg[dicom]'.") \
                from error
        raise MedSegError(f"DICOM file {path} is damaged: its pixel data cannot be read ({error}). "
                          "Remove it or export the series again.") from error
    warnings.warn(f"pydicom could not decode {path.name} ({syntax_name}); SimpleITK did.", DicomWarning, stacklevel=3)
    # SimpleITK has already applied the file's rescale; undo it, as the caller rescales per frame
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    return np.round((array.astype(np.float64) - intercept) / slope)


def equalize_spacing(volume: np.ndarray, geometry: StackGeometry) -> tuple[np.ndarray, StackGeometry]:
    """Resample unevenly spaced slices onto an even grid by linear interpolation along the normal.

    Like dcm2niix's '_Eq_' output: from the first to the last slice, with the number of steps the
    smallest gap needs, so no detail is lost where slices are dense.
    """
    offsets = geometry.offsets
    extent = float(offsets[-1] - offsets[0])
    steps = int(math.ceil(extent / float(np.diff(offsets).min()) - 1e-6))
    targets = offsets[0] + np.arange(steps + 1) * (extent / steps)
    upper = np.clip(np.searchsorted(offsets, targets, side="right"), 1, len(offsets) - 1)
    lower = upper - 1
    weight = ((targets - offsets[lower]) / (offsets[upper] - offsets[lower])).astype(np.float32)[:, None, None]
    resampled = volume[lower] * (1 - weight) + volume[upper] * weight
    spacing = (extent / steps,) + geometry.spacing[1:]
    affine = geometry.affine.copy()
    affine[:3, 2] *= spacing[0] / geometry.spacing[0]
    return resampled.astype(np.float32), StackGeometry(geometry.frames, targets, spacing, affine, None)
