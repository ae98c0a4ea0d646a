"""RT-STRUCT contours -> masks on the grid of the image series they were drawn on.

Each contour is placed on the slice whose plane it lies in (by its position along the slice
normal), turned into continuous pixel coordinates of that slice, and filled by the rule in
``polygon_fill`` (even-odd nesting for holes, pixel centres on a contour line inside). Checks,
all before any output is written:

* a contour off the image grid (between slices, beyond the first or last slice, or outside the
  rows/columns by more than half a pixel) is an error naming the ROI;
* a contour that crosses itself is filled by the even-odd rule, with a warning;
* open contours and points (no area) are ignored, with a warning.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MedSegError
from .dicom_discovery import DicomWarning
from .dicom_volume import DicomSource, _directions
from .polygon_fill import crosses_itself, fill_contours

_CLOSED_TYPES = {"CLOSED_PLANAR", "INTERPOLATED_PLANAR"}
_OFF_PLANE_FRACTION = 0.25   # of the slice spacing: contours further from every slice are off the grid
_EDGE_TOLERANCE = 0.5 + 1e-3  # pixels beyond the outermost pixel centres a contour may reach


@dataclass
class Roi:
    """One structure of an RT-STRUCT: its number, name, colour and closed contours (LPS mm)."""

    number: int
    name: str
    color: tuple[int, int, int] | None = None
    contours: list[np.ndarray] = field(default_factory=list, repr=False)
    skipped: int = 0   # open contours and points, which enclose nothing


def read_rois(ds) -> list[Roi]:
    """The ROIs of an RT-STRUCT dataset in StructureSetROISequence order."""
    rois = {int(item.ROINumber): Roi(int(item.ROINumber), str(item.get("ROIName", "") or f"ROI {item.ROINumber}"))
            for item in ds.get("StructureSetROISequence", [])}
    for item in ds.get("ROIContourSequence", []):
        roi = rois.get(int(item.get("ReferencedROINumber", -1)))
        if roi is None:
            continue  # contours of an ROI the structure set does not declare
        color = item.get("ROIDisplayColor")
        if color is not None and len(color) == 3:
            roi.color = (int(color[0]), int(color[1]), int(color[2]))
        for contour in item.get("ContourSequence", []):
            points = _contour_points(contour)
            kind = str(contour.get("ContourGeometricType", "CLOSED_PLANAR")).upper()
            if kind not in _CLOSED_TYPES or points.size < 9 or points.size % 3:
                roi.skipped += 1
                continue
            roi.contours.append(points.reshape(-1, 3))
    return list(rois.values())


def _contour_points(contour) -> np.ndarray:
    """ContourData as floats, parsed from the raw text when possible (pydicom's DS objects are slow)."""
    element = contour.get_item("ContourData") if "ContourData" in contour else None
    if element is None:
        return np.zeros(0)
    raw = getattr(element, "value", None)
    if isinstance(raw, bytes):
        try:
            return np.array(raw.decode("ascii").split("\\"), float)
        except ValueError:
            pass  # unusual text: let pydicom parse it
    return np.asarray(contour.ContourData, float)


class SliceGrid:
    """Maps LPS points to (slice, column, row) of a source volume's frames, in DICOM row order."""

    def __init__(self, source: DicomSource):
        first = source.frames[0]
        self.row_dir, self.col_dir, self.normal = _directions(first)
        self.positions = np.array([f.position for f in source.frames], float)
        self.offsets = self.positions @ self.normal
        self.row_spacing, self.col_spacing = first.pixel_spacing
        self.shape = (len(source.frames), first.rows, first.columns)
        gaps = np.diff(self.offsets)
        self.slice_spacing = float(np.median(gaps)) if gaps.size else float(first.thickness or 1.0)

    def locate(self, points: np.ndarray, roi: str) -> tuple[int, np.ndarray]:
        """The slice a planar contour lies on, and its points as (column, row) pixel coordinates."""
        along = points @ self.normal
        k = int(np.argmin(np.abs(self.offsets - along.mean())))
        distance = float(np.abs(along - self.offsets[k]).max())
        if distance > _OFF_PLANE_FRACTION * self.slice_spacing:
            span = f"{self.offsets.min():.2f} to {self.offsets.max():.2f}"
            raise MedSegError(f"ROI '{roi}' has a contour off the image grid: it lies {distance:.2f} mm from the "
                              f"nearest slice (slices at {span} mm along the normal, {self.slice_spacing:.2f} mm "
                              "apart). Was it drawn on another series? Leave the ROI out (--roi) or export it again.")
        relative = points - self.positions[k]
        pixels = np.stack([relative @ self.row_dir / self.col_spacing, relative @ self.col_dir / self.row_spacing], 1)
        rows, columns = self.shape[1:]
        low, high = pixels.min(0), pixels.max(0)
        if (low < -_EDGE_TOLERANCE).any() or high[0] > columns - 1 + _EDGE_TOLERANCE or \
                high[1] > rows - 1 + _EDGE_TOLERANCE:
            raise MedSegError(f"ROI '{roi}' has a contour off the image grid on slice {k + 1}: it reaches columns "
                              f"{low[0]:.1f} to {high[0]:.1f} and rows {low[1]:.1f} to {high[1]:.1f}, beyond the "
                              f"{columns}x{rows} image. Leave the ROI out (--roi) or export it again.")
        return k, pixels


def rasterize_roi(roi: Roi, grid: SliceGrid, path: Path) -> np.ndarray:
    """Boolean mask (slices, rows, columns) in DICOM row order; warns about odd contours."""
    by_slice: dict[int, list[np.ndarray]] = {}
    crossing = 0
    for points in roi.contours:
        k, pixels = grid.locate(points, roi.name)
        by_slice.setdefault(k, []).append(pixels)
        crossing += crosses_itself(pixels)
    if crossing:
        warnings.warn(f"{path.name}: ROI '{roi.name}' has {crossing} self-intersecting contour(s); filled by the "
                      "even-odd rule (where a contour crosses itself, the doubly enclosed part is a hole).",
                      DicomWarning, stacklevel=3)
    if roi.skipped:
        warnings.warn(f"{path.name}: ROI '{roi.name}': {roi.skipped} open contour(s) or point(s) ignored "
                      "(they enclose no area).", DicomWarning, stacklevel=3)
    mask = np.zeros(grid.shape, bool)
    for k, contours in by_slice.items():
        mask[k] = fill_contours(contours, grid.shape[1:])
    return mask
