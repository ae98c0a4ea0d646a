"""DICOM in and out: find series, read one as an ``Image``, convert to NIfTI, write DICOM-SEG.

    >>> infos = list_dicom_series("study/")            # what is there
    >>> image = read_dicom_series("study/", series="3")  # number, description or id
    >>> write_dicom_seg(labels, image, {1: "liver"}, "liver_seg.dcm")

The image is on dcm2niix's grid (same voxels, same affine) and carries ``dicom_source``
(a ``DicomSource``) so a label map predicted on it can be written back as DICOM-SEG.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import MedSegError
from .dicom_discovery import DicomWarning, SeriesInfo, iter_files, read_header, scan_folder, select_series
from .dicom_seg import write_segmentation
from .dicom_volume import DicomSource, equalize_spacing, read_pixels, stack_geometry
from .image import Image
from .nifti import write_image

__all__ = ["is_dicom_folder", "list_dicom_series", "read_dicom_series", "read_dicom_volume", "write_dicom_seg",
           "dicom_to_nifti", "write_volume_nifti", "format_series_list", "SeriesInfo", "DicomSource", "DicomWarning"]

_MAX_FILES_PROBED = 200  # is_dicom_folder looks at this many files before giving up


def _looks_like_dicom(path: Path) -> bool:
    """The 'DICM' marker after the 128-byte preamble (every DICOM file written to disk has it)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def is_dicom_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder with at least one DICOM file in its tree."""
    path = Path(path)
    if not path.is_dir():
        return False
    for count, file in enumerate(iter_files(path)):
        if count >= _MAX_FILES_PROBED:
            break
        if _looks_like_dicom(file):
            return True
        if count < 20 and not file.suffix and read_header_safely(file):
            return True  # old files without the preamble are rare; probe a few without suffix
    return False


def read_header_safely(path: Path) -> bool:
    try:
        return read_header(path) is not None
    except Exception:
        return False


def list_dicom_series(folder: str | os.PathLike) -> list[SeriesInfo]:
    """Every image volume under ``folder`` (series, or parts of mixed series), by series number."""
    _check_folder(folder)
    return scan_folder(folder)


def _check_folder(folder: str | os.PathLike) -> Path:
    folder = Path(folder)
    if not folder.exists():
        raise MedSegError(f"DICOM folder not found: {folder}")
    if not folder.is_dir():
        raise MedSegError(f"{folder} is a file; give the folder that holds the DICOM series.")
    if not any(True for _ in iter_files(folder)):
        raise MedSegError(f"The folder {folder} is empty; give the folder that holds the exported DICOM files.")
    return folder


def format_series_list(infos: list[SeriesInfo]) -> str:
    """One line per volume: number, modality, size, description, id."""
    return "\n".join(info.summary() for info in infos)


def read_dicom_volume(folder: str | os.PathLike, series: str | None = None, *,
                      resample_uneven: bool = False) -> tuple[Image, DicomSource]:
    """Read one volume; ``series`` picks it (id, SeriesInstanceUID, number or description).

    Unevenly spaced or missing slices are refused unless ``resample_uneven`` (then the slices
    are interpolated onto an even grid, as dcm2niix's '_Eq_' output, and a warning says so).
    """
    folder = _check_folder(folder)
    info = select_series(scan_folder(folder), series, folder)
    geometry = stack_geometry(info)
    volume = read_pixels(geometry.frames)
    resampled = None
    if geometry.uneven:
        name = f"DICOM series {info.number} ({info.description or info.id})"
        if not resample_uneven:
            raise MedSegError(f"{name} is not evenly spaced: {geometry.uneven}. Export the complete series, or "
                              "allow interpolation onto an even grid (--resample-uneven / resample_uneven=True).")
        warnings.warn(f"{name}: {geometry.uneven}; interpolated onto an even grid.", DicomWarning, stacklevel=2)
        resampled = geometry.uneven
        volume, geometry = equalize_spacing(volume, geometry)
    image = Image(volume[None, :, ::-1, :].copy(), geometry.spacing, geometry.affine, _nifti_header(geometry.affine),
                  channel_names=[info.modality or "image"])
    source = DicomSource(folder, info, geometry.frames, resampled)
    image.dicom_source = source  # travels with the image for write_dicom_seg
    return image, source


def read_dicom_series(folder: str | os.PathLike, series: str | None = None, *,
                      resample_uneven: bool = False) -> Image:
    """Read one DICOM volume as a single-channel ``Image`` on dcm2niix's grid.

    Raises ``MedSegError`` listing the series when the folder holds several and none is chosen.
    """
    return read_dicom_volume(folder, series, resample_uneven=resample_uneven)[0]


def _nifti_header(affine: np.ndarray):
    """A NIfTI header with this affine as qform and sform (scanner coordinates), in mm."""
    import nibabel
    header = nibabel.Nifti1Header()
    header.set_qform(affine, code=1)
    header.set_sform(affine, code=1)
    header.set_xyzt_units("mm", "sec")
    return header


def dicom_to_nifti(folder: str | os.PathLike, output: str | os.PathLike, series: str | None = None, *,
                   resample_uneven: bool = False) -> Path:
    """Convert one DICOM volume to a NIfTI file (int16 when the values allow, else float32)."""
    return write_volume_nifti(read_dicom_series(folder, series, resample_uneven=resample_uneven), output)


def write_volume_nifti(image: Image, output: str | os.PathLike) -> Path:
    """Write a volume read from DICOM as NIfTI (int16 when the values allow, else float32)."""
    data = image.array[0]
    whole = np.array_equal(data, np.round(data))
    dtype = np.int16 if whole and data.min(initial=0) >= -32768 and data.max(initial=0) <= 32767 else np.float32
    return write_image(data, image, output, dtype=dtype)


def write_dicom_seg(labels: np.ndarray, source, label_names: dict[int, str], path: str | os.PathLike,
                    **options) -> Path:
    """Write a (z, y, x) label map read from DICOM as a DICOM-SEG object referencing its source.

    ``source`` is the ``Image`` from ``read_dicom_series`` or its ``DicomSource``.
    """
    source = getattr(source, "dicom_source", source)
    if not isinstance(source, DicomSource):
        raise MedSegError("DICOM-SEG output needs a DICOM input: the image was not read from a DICOM series.")
    return write_segmentation(np.asarray(labels), source, label_names, Path(path), **options)
