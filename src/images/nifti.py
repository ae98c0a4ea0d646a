"""NIfTI reading and writing with nibabel, keeping the geometry exactly.

Voxel order follows nnU-Net's SimpleITK reader: a NIfTI volume with data indexed (i, j, k)
becomes an array indexed (k, j, i) = (z, y, x), spacing (z, y, x) from the header.
"""
from __future__ import annotations

import math
import os
import re
import stat
import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import MedSegError, one_line
from ..fileio import atomic_path
from ..memory import array_bytes, check_memory
from .image import Image, check_same_grid

NIFTI_SUFFIXES = (".nii.gz", ".nii")
_CHANNEL_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})(?P<ext>\.nii(\.gz)?)$")


def _nibabel():
    import nibabel  # imported lazily: `import chimerax.medseg` stays light
    return nibabel


def read_image(path: str | os.PathLike) -> Image:
    """Read one NIfTI file; a 4D file's last axis becomes channels.

    Refused before the voxels are loaded: non-regular files (a FIFO would block forever), complex
    or structured voxel types, volumes larger than the free memory, and geometry that is not
    finite, positive and invertible (it would place or resample the result wrongly).
    """
    path = Path(path)
    check_regular_file(path, "Input file")
    nib = _nibabel()
    try:
        nii = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for broken files
        raise MedSegError(f"Cannot read {path} as NIfTI: {one_line(exc)}") from exc
    _check_header(nii, path)
    try:
        data = np.asanyarray(nii.dataobj)
    except Exception as exc:
        raise MedSegError(f"Cannot read {path} as NIfTI: {one_line(exc)}") from exc
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim == 3:
        data = data[..., None]
    if data.ndim != 4:
        raise MedSegError(f"{path} has {data.ndim} dimensions (shape {data.shape}); expected a 3D volume "
                          "or a 4D volume whose last axis holds channels.")
    array = np.ascontiguousarray(data.transpose(3, 2, 1, 0), dtype=np.float32)
    zooms = tuple(nii.header.get_zooms()[:3]) + (1.0,) * max(0, 3 - len(nii.header.get_zooms()))
    x, y, z = (float(zoom) for zoom in zooms[:3])  # zooms has at least 3 entries
    spacing = (z, y, x)
    return Image(array, spacing, nii.affine, nii.header)


def check_regular_file(path: Path, what: str) -> None:
    """Refuse a missing path, a folder, or a FIFO/device/socket (opening those can block or never end)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise MedSegError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise MedSegError(f"Cannot open {path}: {exc.strerror}.") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, device or socket)"
        raise MedSegError(f"{path} is {kind}; give a NIfTI file (.nii or .nii.gz).")


def check_nifti(path: str | os.PathLike) -> None:
    """Everything ``read_image`` checks before loading the voxels (a cohort's cases up front)."""
    path = Path(path)
    check_regular_file(path, "Input file")
    try:
        nii = _nibabel().load(str(path))
    except Exception as exc:  # nibabel raises many types for broken files
        raise MedSegError(f"Cannot read {path} as NIfTI: {one_line(exc)}") from exc
    _check_header(nii, path)


def _check_header(nii, path: Path) -> None:
    """Voxel type, size and geometry from the header alone, before any voxel is read."""
    dtype = nii.get_data_dtype()
    if dtype.kind not in "biuf" or dtype.fields is not None:
        what = "complex" if dtype.kind == "c" else f"{dtype} (e.g. RGB)"
        raise MedSegError(f"{path} holds {what} voxels; only real-valued greyscale volumes can be used. "
                          "Convert it (e.g. take the magnitude, or one colour channel) first.")
    shape = tuple(int(s) for s in nii.shape)
    scaled = max(dtype.itemsize, 8)  # nibabel may apply scl_slope in float64
    check_memory(array_bytes(shape, scaled + 4), f"Reading {path.name} (shape {shape})",
                 "The header's dimensions may be damaged; otherwise crop or downsample the image first.")
    zooms = [float(z) for z in nii.header.get_zooms()[:3]]
    if not all(math.isfinite(z) and z > 0 for z in zooms):
        raise MedSegError(f"{path} has voxel spacing {zooms} (pixdim); spacing must be finite and positive. "
                          "Fix the header (e.g. with nibabel or fslhd/fslorient) and run again.")
    affine = np.asarray(nii.affine, dtype=np.float64)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise MedSegError(f"{path} has an orientation matrix (sform/qform) that is not finite or not invertible, "
                          "so its voxels have no place in space. Fix the header (e.g. copy the geometry of the "
                          "original scan) and run again.")


def read_case(paths: Sequence[str | os.PathLike]) -> Image:
    """Read the channel files of one case (in channel order) into one multi-channel image."""
    if not paths:
        raise MedSegError("No input files were given for this case.")
    first = read_image(paths[0])
    if len(paths) == 1:
        return first
    # channels go straight into one array, so a case never sits in memory twice
    array = np.empty((len(paths), *first.shape), dtype=np.float32)
    for c, path in enumerate(paths):
        image = first if c == 0 else read_image(path)
        check_same_grid([first, image], [Path(paths[0]).name, Path(path).name])
        if image.num_channels != 1:
            raise MedSegError(f"{path} holds {image.num_channels} channels; give one 3D file per channel.")
        array[c] = image.array[0]
        del image
    return Image(array, first.spacing, first.affine, first.header)


def find_cases(folder: str | os.PathLike) -> dict[str, list[Path]]:
    """Group nnU-Net style files (``CASE_0000.nii.gz``, ``CASE_0001.nii.gz``...) by case.

    Files without a channel suffix count as single-channel (or 4D) cases of their own.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MedSegError(f"Input folder not found: {folder}")
    cases: dict[str, dict[int, Path]] = defaultdict(dict)
    skipped = []
    for path in sorted(folder.iterdir()):
        if not path.name.endswith(NIFTI_SUFFIXES):
            continue
        if not path.is_file():  # a FIFO named like an image would block the reader forever
            skipped.append(path.name)
            continue
        match = _CHANNEL_SUFFIX.match(path.name)
        if match:
            cases[match["case"]][int(match["channel"])] = path
        else:
            cases[strip_nifti_suffix(path.name)][0] = path
    if skipped:
        warnings.warn(f"Skipped {len(skipped)} entries of {folder} that are not regular files: "
                      f"{', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}", stacklevel=2)
    result = {}
    for case, channels in cases.items():
        indices = sorted(channels)
        if indices != list(range(len(indices))):
            raise MedSegError(f"Case {case} in {folder} has channel files {indices}; expected "
                              f"_0000 to _{len(indices) - 1:04d} without gaps.")
        result[case] = [channels[i] for i in indices]
    if not result:
        raise MedSegError(f"No NIfTI files (.nii, .nii.gz) found in {folder}.")
    return result


def strip_nifti_suffix(name: str) -> str:
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def write_image(array: np.ndarray, reference: Image, path: str | os.PathLike, dtype=None) -> Path:
    """Write a (z, y, x) or (c, z, y, x) array on ``reference``'s grid, atomically."""
    nib = _nibabel()
    path = Path(path)
    if not path.name.endswith(NIFTI_SUFFIXES):
        path = path.with_name(path.name + ".nii.gz")
    if array.ndim == 3:
        data = array.transpose(2, 1, 0)
    elif array.ndim == 4:
        data = array.transpose(3, 2, 1, 0)
    else:
        raise MedSegError(f"Cannot write an array of shape {array.shape} as an image.")
    if data.shape[:3] != reference.shape[::-1]:
        raise MedSegError(f"Array shape {array.shape} does not fit the reference grid {reference.shape}.")
    if dtype is not None:
        data = data.astype(dtype)
    header = reference.header.copy() if reference.header is not None else None
    nii = nib.Nifti1Image(np.ascontiguousarray(data), reference.affine, header)
    nii.set_data_dtype(data.dtype)
    if header is not None:
        # keep the source's qform/sform codes so viewers place the result exactly on the input
        nii.set_qform(reference.affine, code=int(header["qform_code"]) or 1)
        nii.set_sform(reference.affine, code=int(header["sform_code"]) or 1)
        nii.header["scl_slope"], nii.header["scl_inter"] = 1, 0
    with atomic_path(path) as tmp:
        nib.save(nii, str(tmp))
    return path


def write_label_image(labels: np.ndarray, reference: Image, path: str | os.PathLike) -> Path:
    """Write a (z, y, x) label map with the smallest integer type that holds it."""
    low, high = int(labels.min(initial=0)), int(labels.max(initial=0))
    dtype: type[np.integer]
    if low >= 0:
        dtype = np.uint8 if high < 256 else np.uint16 if high < 65536 else np.int32
    else:
        dtype = np.int16 if -32768 <= low and high < 32768 else np.int32
    return write_image(labels, reference, path, dtype=dtype)
