"""NIfTI reading and writing with nibabel, keeping the geometry exactly.

Voxel order follows nnU-Net's SimpleITK reader: a NIfTI volume with data indexed (i, j, k)
becomes an array indexed (k, j, i) = (z, y, x), spacing (z, y, x) from the header.
"""
from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import MedSegError
from ..fileio import atomic_path
from .image import Image, check_same_grid

NIFTI_SUFFIXES = (".nii.gz", ".nii")
_CHANNEL_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})(?P<ext>\.nii(\.gz)?)$")


def _nibabel():
    import nibabel  # imported lazily: `import chimerax.medseg` stays light
    return nibabel


def read_image(path: str | os.PathLike) -> Image:
    """Read one NIfTI file; a 4D file's last axis becomes channels."""
    path = Path(path)
    if not path.exists():
        raise MedSegError(f"Input file not found: {path}")
    nib = _nibabel()
    try:
        nii = nib.load(str(path))
        data = np.asanyarray(nii.dataobj)
    except Exception as exc:  # nibabel raises many types for broken files
        raise MedSegError(f"Cannot read {path} as NIfTI: {exc}") from exc
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim == 3:
        data = data[..., None]
    if data.ndim != 4:
        raise MedSegError(f"{path} has {data.ndim} dimensions (shape {data.shape}); expected a 3D volume "
                          "or a 4D volume whose last axis holds channels.")
    array = np.ascontiguousarray(data.transpose(3, 2, 1, 0), dtype=np.float32)
    zooms = nii.header.get_zooms()[:3]
    spacing = tuple(float(z) for z in reversed(zooms))
    return Image(array, spacing, nii.affine, nii.header)


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
    for path in sorted(folder.iterdir()):
        if not path.name.endswith(NIFTI_SUFFIXES):
            continue
        match = _CHANNEL_SUFFIX.match(path.name)
        if match:
            cases[match["case"]][int(match["channel"])] = path
        else:
            cases[strip_nifti_suffix(path.name)][0] = path
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
    dtype = np.uint8 if labels.max(initial=0) < 256 and labels.min(initial=0) >= 0 else np.int16
    return write_image(labels, reference, path, dtype=dtype)
