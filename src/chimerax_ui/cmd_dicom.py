"""ChimeraX ``segment dicom DIR``: list the series in a DICOM folder and open one as a volume.

The volume is read by MedSeg's own DICOM reader (the grid dcm2niix gives: positions from
ImagePositionPatient, not SliceThickness), so it lies exactly where a label map predicted on it
or on the dcm2niix NIfTI lies. ``segment dicom DIR model NAME`` also segments the opened volume
and ``saveSeg FILE`` writes the labels back as a DICOM-SEG object referencing the series.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from chimerax.core.commands import BoolArg, CmdDesc, OpenFolderNameArg, SaveFileNameArg, StringArg, register

from ..errors import MedSegError
from ..images.dicom import format_series_list, list_dicom_series, read_dicom_volume
from .cmd_segment import segment
from .errors import user_errors
from .volumes import open_image_volumes


def register_commands(logger: Any) -> None:
    desc = CmdDesc(required=[("folder", OpenFolderNameArg)],
                   keyword=[("series", StringArg), ("list", BoolArg), ("resample_uneven", BoolArg),
                            ("model", StringArg), ("save_seg", SaveFileNameArg)],
                   synopsis="Open a DICOM series (MedSeg reader) and optionally segment it")
    register("segment dicom", desc, segment_dicom, logger=logger)


@user_errors
def segment_dicom(session: Any, folder: str, series: str | None = None, list: bool = False,
                  resample_uneven: bool = False, model: str | None = None, save_seg: str | None = None) -> list:
    """Open the chosen series of ``folder`` as volumes; returns the opened volumes.

    ``series`` is a number, description, SeriesInstanceUID or id; several may be given
    separated by commas, or ``all``. With ``list true`` only the series table is logged.
    """
    return _segment_dicom(session, Path(folder).expanduser(), series, list, resample_uneven, model, save_seg)


def _segment_dicom(session: Any, folder: Path, series: str | None, only_list: bool, resample_uneven: bool,
                   model: str | None, save_seg: str | None) -> list:
    infos = _logged(session, lambda: list_dicom_series(folder))
    if not infos:
        raise MedSegError(f"No DICOM image series found in {folder}: no DICOM files with image geometry.")
    if only_list:
        session.logger.info(f"DICOM series in {folder}:\n{format_series_list(infos)}")
        return []
    selectors = [i.id for i in infos] if series == "all" else (
        [s.strip() for s in series.split(",")] if series else [None])
    if (model or save_seg) and series == "all":
        raise MedSegError("Segmenting a DICOM folder needs one series per model channel: name them with "
                          "`series` (e.g. `series T1,T2`), not `all`.")
    loaded = [_logged(session, lambda s=s: read_dicom_volume(folder, s, resample_uneven=resample_uneven))
              for s in selectors]  # all read before any is opened: a bad one opens nothing
    volumes = []
    for image, source in loaded:
        (volume,) = open_image_volumes(session, image, [_volume_name(source.series)])
        volume.medseg_dicom_source = source
        volumes.append(volume)
        z, y, x = image.shape
        session.logger.info(f"Opened DICOM series {_volume_name(source.series)} as #{volume.id_string}: "
                            f"{x}x{y}x{z} voxels, spacing {image.spacing[2]:.4g} x {image.spacing[1]:.4g} x "
                            f"{image.spacing[0]:.4g} mm (x, y, z)")
    if model:  # one volume per model channel, the DICOM-SEG referencing the first series
        _segment_and_save(session, model, volumes, save_seg)
    elif save_seg:
        raise MedSegError("saveSeg needs a model to segment with: add `model NAME`.")
    return volumes


def _logged(session, work):
    """Run ``work``; DICOM warnings (skipped files, interpolation) go to the ChimeraX log."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = work()
    for item in caught:
        session.logger.warning(str(item.message))
    return result


def _volume_name(info) -> str:
    number = f"{info.number} " if info.number is not None else ""
    part = f" [{info.part}]" if info.part else ""
    return f"{number}{info.description or info.modality or 'DICOM'}{part}".strip()


def _segment_and_save(session: Any, model: str, volumes: list, save_seg: str | None) -> None:
    """Segment the opened series (in the background in the GUI); with ``save_seg`` also write a
    DICOM-SEG referencing the first series, as ``segment MODEL #N save FILE.dcm`` does."""
    segment(session, model, volumes, save=save_seg, format="dicom-seg" if save_seg else None)
