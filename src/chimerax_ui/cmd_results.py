"""ChimeraX ``segment save #N FILE`` and ``segment labels #N ...``: what to do with a result.

``segment save`` writes a label volume as NIfTI or, when its input came from DICOM (``segment
dicom``), as DICOM-SEG or RT-STRUCT referencing the source series; it runs as a background task.
``segment labels`` shows, hides or recolours the surfaces of named structures (the panel's
table issues it).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from chimerax.core.colors import Color
from chimerax.core.commands import BoolArg, CmdDesc, ColorArg, EnumOf, ListOf, SaveFileNameArg, StringArg, register
from chimerax.map import MapArg

from ..errors import MedSegError
from ..images import Image, write_label_image
from ..images.dicom import write_dicom_seg
from ..images.rtstruct_write import write_rtstruct
from .errors import user_errors
from .tasks import BackgroundTask
from .volumes import grid_to_scene, label_surfaces

FORMATS = ("nifti", "dicom-seg", "rtstruct")
DICOM_FORMATS = ("dicom-seg", "rtstruct")  # they reference the source series
_SUFFIXES = {".nii": "nifti", ".nii.gz": "nifti", ".dcm": "dicom-seg"}


def register_commands(logger: Any) -> None:
    register("segment save", CmdDesc(required=[("volume", MapArg), ("path", SaveFileNameArg)],
                                     keyword=[("format", EnumOf(FORMATS)), ("wait", BoolArg)],
                                     synopsis="Save a label volume as NIfTI, DICOM-SEG or RT-STRUCT"),
             segment_save, logger=logger)
    register("segment labels", CmdDesc(required=[("volume", MapArg)],
                                       keyword=[("names", ListOf(StringArg)), ("show", BoolArg), ("color", ColorArg)],
                                       synopsis="Show, hide or colour the surfaces of a label volume's structures"),
             segment_labels, logger=logger)


def output_format(path: str, format: str | None) -> str:
    """The format named, or the one the file name implies (``.nii.gz`` NIfTI, ``.dcm`` DICOM-SEG)."""
    if format:
        return format
    name = Path(path).name.lower()
    for suffix, implied in _SUFFIXES.items():
        if name.endswith(suffix):
            return implied
    raise MedSegError(f"Cannot tell the format of {path}: name it .nii.gz (NIfTI) or .dcm (DICOM-SEG), "
                      f"or add 'format {'|'.join(FORMATS)}'.")


class SaveTask(BackgroundTask):
    """Writes one label volume's voxels (copied on the main thread) in the background."""

    thread_name = "medseg-save"

    def __init__(self, session: Any, volume: Any, path: Path, format: str) -> None:
        super().__init__(session, f"Saving #{volume.id_string}")
        self.path, self.format = path, format
        self.labels = np.array(volume.full_matrix(), copy=True)
        self.label_names: dict[int, str] = dict(getattr(volume, "medseg_label_names", {}) or {})
        self.source = getattr(volume, "medseg_dicom_source", None)
        affine = grid_to_scene(volume)
        z, y, x = (float(np.linalg.norm(affine[:3, a])) for a in (2, 1, 0))
        self.reference = Image(self.labels[None], (z, y, x), affine)
        self.volume_id = volume.id_string
        if format in DICOM_FORMATS and self.source is None:
            raise MedSegError(f"#{volume.id_string} was not segmented from a DICOM series (open it with "
                              f"`segment dicom`), so a {format} file cannot reference its source; save it as NIfTI.")
        self.colors = {v: (int(rgba[0]), int(rgba[1]), int(rgba[2]))
                       for v, rgba in enumerate(getattr(volume, "segment_colors", []))}
        if not self.label_names:
            values = [int(v) for v in np.unique(self.labels) if v]
            self.label_names = {v: f"label {v}" for v in values}

    def work(self) -> Path:
        if self.format == "dicom-seg":
            return write_dicom_seg(self.labels, self.source, self.label_names, self.path)
        if self.format == "rtstruct":
            return write_rtstruct(self.labels, self.source, self.label_names, self.path, colors=self.colors)
        return write_label_image(self.labels, self.reference, self.path)

    def deliver(self, written: Path) -> None:
        self.session.logger.info(f"Saved label volume #{self.volume_id} as {self.format} {written}")


@user_errors
def segment_save(session: Any, volume: Any, path: str, format: str | None = None,
                 wait: bool | None = None) -> SaveTask:
    """Write ``volume`` (a label volume) to ``path``; checked now, written in the background."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise MedSegError(f"{target} is a folder; give a file name (e.g. {target / 'labels.nii.gz'}).")
    task = SaveTask(session, volume, target, output_format(path, format))
    return task.start(wait)


@user_errors
def segment_labels(session: Any, volume: Any, names: Sequence[str] | None = None, show: bool | None = None,
                   color: Color | None = None) -> list:
    """Show/hide/colour the surfaces of ``names`` (default: every structure); returns the surfaces."""
    surfaces = label_surfaces(session, volume)
    if not surfaces:
        raise MedSegError(f"#{volume.id_string} has no label surfaces (segment it with 'surfaces true').")
    if names:
        known = {s.name: s for s in surfaces}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise MedSegError(f"#{volume.id_string} has no structure {', '.join(map(repr, unknown))}; "
                              f"its structures are {', '.join(known)}.")
        surfaces = [known[n] for n in names]
    for surface in surfaces:
        if show is not None:
            surface.display = show
        if color is not None:
            surface.color = color.uint8x4()
    return surfaces
