"""The in-memory image: voxels plus everything needed to put them back where they came from."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from ..errors import MedSegError


@dataclass
class Image:
    """A multi-channel 3D image.

    Attributes:
        array: voxels, shape (c, z, y, x); z is the slowest (NIfTI's third) voxel axis.
        spacing: voxel size in mm along (z, y, x).
        affine: 4x4 voxel-(i, j, k) to world (RAS mm) matrix, NIfTI convention, where
            i indexes x, j indexes y and k indexes z of ``array``.
        header: the source file's header (nibabel), kept so outputs are written alike.
        channel_names: one name per channel, where known.
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    header: Any = None  # a nibabel header, or None (nibabel is not imported here)
    channel_names: list[str] | None = None
    # the DicomSource of an image read from DICOM (images/dicom.py), for outputs that reference it
    dicom_source: object | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.array.ndim != 4:
            raise MedSegError(f"An image must have 4 dimensions (channels, z, y, x); got shape {self.array.shape}.")
        self.spacing = cast("tuple[float, float, float]", tuple(float(s) for s in self.spacing))
        if not all(math.isfinite(s) and s > 0 for s in self.spacing):
            # NaN spacing would otherwise surface far away (e.g. as "channels on different grids")
            raise MedSegError(f"The image's voxel spacing {self.spacing} (z, y, x) is not finite and positive; "
                              "fix the file's header (pixdim / PixelSpacing) and run again.")
        self.affine = np.asarray(self.affine, dtype=np.float64)

    @property
    def shape(self) -> tuple[int, int, int]:
        """The spatial shape (z, y, x)."""
        return tuple(self.array.shape[1:])

    @property
    def num_channels(self) -> int:
        return self.array.shape[0]

    def check_finite(self, what: str = "The image") -> None:
        """Refuse NaN or infinite voxels, which would silently poison normalization."""
        finite = np.isfinite(self.array)
        if not finite.all():
            bad = int((~finite).sum())
            channels = [c for c in range(self.num_channels) if not finite[c].all()]
            raise MedSegError(f"{what} has {bad} NaN or infinite voxels (channel(s) {channels}). "
                              "Fix or mask the input (e.g. replace NaN with 0) and run again.")


def check_same_grid(images: Sequence[Image], names: Sequence[str], atol: float = 1e-3) -> None:
    """Raise unless all images share shape, spacing and affine (channels of one case must)."""
    first = images[0]
    for image, name in zip(images[1:], names[1:]):
        if image.shape != first.shape:
            raise MedSegError(f"Channels are on different grids: {names[0]} has shape {first.shape} (z, y, x) "
                              f"but {name} has {image.shape}. Resample them onto one grid first.")
        if not np.allclose(image.affine, first.affine, atol=atol):
            raise MedSegError(f"Channels are on different grids: {names[0]} and {name} have different "
                              "orientation/origin/spacing (affines differ). "
                              "Register or resample them onto one grid first.")
