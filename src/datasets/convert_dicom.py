"""DICOM studies (image series + RT-STRUCT / SEG, or NIfTI masks) -> one nnU-Net raw dataset.

Each case is a folder holding a DICOM study (any file layout). Channels are series picked by
``NAME=PATTERN``: a sub-folder or NIfTI file matching PATTERN, else the series whose description,
number or modality matches it. Labels are ``NAME=PATTERN[,PATTERN]``: mask files matching a
pattern, and ROIs / segments whose name matches it in the RT-STRUCT and SEG objects drawn on
the first channel's series, all united into that label (later labels win where labels overlap,
or ``overlap="error"`` refuses the case, as for ``multimask``).

Several annotators: ``annotators`` entries ``NAME`` or ``NAME=OBJECT_PATTERN``. Each annotator's
label map uses only the objects whose structure-set label, series description or file name
matches OBJECT_PATTERN, and ``{annotator}`` in a label pattern becomes the annotator's NAME
(``gtv=GTV-1_{annotator}`` for ROIs named per reader in one file). The first annotator's map is
the training label (labelsTr); every annotator's map goes to ``annotators/<NAME>/<case>.nii.gz``,
the folders ``medseg evaluate PRED annotators/*`` scores for stability across annotators.
"""
from __future__ import annotations

import fnmatch
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MedSegError
from ..images.dicom import is_dicom_folder, list_dicom_series, read_dicom_volume
from ..images.dicom_discovery import SeriesInfo
from ..images.dicom_labels import LabelObject, find_label_objects, label_map, referenced_series
from ..images.dicom_volume import DicomSource
from ..images.image import Image, check_same_grid
from ..images.nifti import read_image, write_image, write_label_image
from .convert_cases import GRID_ATOL, LabelSpec, _matches, paint, parse_label_specs
from .layout import create_dataset_folder, write_dataset_json

ANNOTATOR_FOLDER = "annotators"


@dataclass(frozen=True)
class Annotator:
    name: str
    objects: str | None   # glob on the object's label / description / file name; None: every object


def parse_annotators(texts: list[str] | None) -> list[Annotator]:
    out = []
    for text in texts or []:
        name, _, pattern = text.partition("=")
        if not name.strip() or any(c in name for c in "/\\*?"):
            raise MedSegError(f"Annotator {text!r} must look like NAME or NAME=OBJECT_PATTERN (a plain name).")
        out.append(Annotator(name.strip(), pattern.strip() or None))
    if len({a.name for a in out}) != len(out):
        raise MedSegError("Annotator names must differ: " + ", ".join(a.name for a in out))
    return out


@dataclass
class Channel:
    image: Image
    source: DicomSource | None   # where read from DICOM
    info: SeriesInfo | None      # where read from DICOM


def convert_dicom_cases(source: str | os.PathLike, raw_root: str | os.PathLike, dataset_id: int, name: str,
                        channels: list[str], labels: list[str], overlap: str = "later-wins",
                        allow_missing: bool = False, annotators: list[str] | None = None) -> tuple[Path, list[str]]:
    """Convert ``source/<case>/`` DICOM studies; returns the dataset folder and notes. Nothing is kept on error."""
    source = Path(source)
    channel_specs, label_specs = parse_label_specs(channels), parse_label_specs(labels)
    readers = parse_annotators(annotators)
    case_dirs = sorted(p for p in source.iterdir() if p.is_dir()) if source.is_dir() else []
    if not case_dirs:
        raise MedSegError(f"No case folders in {source}; expected one folder per case.")
    target = create_dataset_folder(raw_root, dataset_id, name)
    notes: list[str] = []
    try:
        for case_dir in case_dirs:
            notes += _convert_case(case_dir, target, channel_specs, label_specs, overlap, allow_missing, readers)
        rule = "later label wins" if overlap != "error" else "refused"
        extra: dict[str, object] = {
            "description": f"converted by medseg from DICOM studies in {source.name}; overlapping labels: {rule}"}
        if readers:
            extra["annotators"] = {a.name: f"{ANNOTATOR_FOLDER}/{a.name}" for a in readers}
        write_dataset_json(target, {str(i): c.name for i, c in enumerate(channel_specs)},
                           {"background": 0, **{s.name: i for i, s in enumerate(label_specs, start=1)}},
                           len(case_dirs), extra=extra)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target, notes


def _convert_case(case_dir: Path, target: Path, channel_specs, label_specs, overlap, allow_missing,
                  readers: list[Annotator]) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a study's odd files are reported by `medseg dicom`, not per case here
        infos = list_dicom_series(case_dir) if is_dicom_folder(case_dir) else []
    chans = [_read_channel(case_dir, spec, infos) for spec in channel_specs]
    check_same_grid([c.image for c in chans], [s.name for s in channel_specs])
    objects = _objects_on(case_dir, chans[0], infos)
    maps, notes = [], []
    choices: list[Annotator | None] = list(readers) or [None]
    for reader in choices:
        chosen = _objects_of(objects, reader, case_dir)
        labels, more = _label_map(case_dir, chans[0], chosen, label_specs, overlap, allow_missing, reader)
        maps.append(labels)
        notes += more
    for c, chan in enumerate(chans):
        data = chan.image.array[0]
        whole = np.array_equal(data, np.round(data)) and data.min(initial=0) >= -32768 and data.max(initial=0) <= 32767
        write_image(data, chan.image, target / "imagesTr" / f"{case_dir.name}_{c:04d}.nii.gz",
                    dtype=np.int16 if whole else np.float32)
    write_label_image(maps[0], chans[0].image, target / "labelsTr" / f"{case_dir.name}.nii.gz")
    for reader, labels in zip(readers, maps):
        write_label_image(labels, chans[0].image, target / ANNOTATOR_FOLDER / reader.name / f"{case_dir.name}.nii.gz")
    return notes


def _read_channel(case_dir: Path, spec: LabelSpec, infos) -> Channel:
    found = [p for pattern in spec.patterns for p in _matches(case_dir, pattern)]
    if len(found) == 1 and found[0].is_file() and found[0].name.endswith((".nii", ".nii.gz")):
        return Channel(read_image(found[0]), None, None)
    in_folder = [i for i in infos if len(found) == 1 and found[0].is_dir()
                 and all(found[0] in f.path.parents for f in i.frames)]
    by_series = in_folder or [i for i in infos if any(_series_matches(i, p) for p in spec.patterns)]
    if len(by_series) != 1:
        listing = " | ".join(i.summary() for i in infos) or "no DICOM series"
        raise MedSegError(f"Case {case_dir.name}: channel {spec.name!r} (patterns {', '.join(spec.patterns)}) matched "
                          f"{len(by_series)} series; it must match exactly one (series there: {listing}).")
    image, source = read_dicom_volume(case_dir, by_series[0].id)
    return Channel(image, source, by_series[0])


def _series_matches(info, pattern: str) -> bool:
    pattern = pattern.lower()
    words = [info.description, str(info.number) if info.number is not None else "", info.modality]
    return any(w and fnmatch.fnmatchcase(w.lower(), pattern) for w in words)


def _objects_on(case_dir: Path, first: Channel, infos) -> list[LabelObject]:
    """The RT-STRUCT / SEG objects drawn on the first channel's series (others are noted, not used)."""
    objects = find_label_objects(case_dir)
    if objects and first.info is None:
        raise MedSegError(f"Case {case_dir.name}: its RT-STRUCT/SEG objects need the first channel read from DICOM.")
    return [o for o in objects if referenced_series(o, infos, case_dir).id == getattr(first.info, "id", None)]


def _objects_of(objects: list[LabelObject], reader: Annotator | None, case_dir: Path) -> list[LabelObject]:
    if reader is None or reader.objects is None:
        return objects
    pattern = reader.objects.lower()
    chosen = [o for o in objects if any(fnmatch.fnmatchcase(w.lower(), pattern)
                                        for w in (o.label, o.path.name, o.path.stem))]
    if not chosen:
        raise MedSegError(f"Case {case_dir.name}: no RT-STRUCT/SEG matches annotator {reader.name}'s pattern "
                          f"{reader.objects!r}; objects there: " + ", ".join(f"{o.path.name} ('{o.label}')"
                                                                          for o in objects))
    return chosen


def _label_map(case_dir: Path, first: Channel, objects: list[LabelObject], specs: list[LabelSpec], overlap: str,
               allow_missing: bool, reader: Annotator | None) -> tuple[np.ndarray, list[str]]:
    shape = first.image.shape
    labels = np.zeros(shape, np.uint8)
    notes = []
    who = f" ({reader.name})" if reader else ""
    for value, spec in enumerate(specs, start=1):
        patterns = [p.replace("{annotator}", reader.name) if reader else p for p in spec.patterns]
        mask = _union(case_dir, first, objects, patterns, shape)
        if mask is None:
            if not allow_missing:
                raise MedSegError(f"Case {case_dir.name}{who}: no mask file or ROI for label {spec.name!r} "
                                  f"(patterns {', '.join(patterns)}). Pass --allow-missing to treat it as empty.")
            notes.append(f"{case_dir.name}{who}: no {spec.name} (empty)")
            continue
        paint(labels, mask, value, spec.name, f"{case_dir.name}{who}", overlap, notes)
    return labels, notes


def _union(case_dir: Path, first: Channel, objects: list[LabelObject], patterns: list[str], shape) -> np.ndarray | None:
    """Every mask file and ROI matching ``patterns``, united; None when nothing matches."""
    mask, found = np.zeros(shape, bool), False
    files = [f for p in patterns for f in _matches(case_dir, p) if f.is_file() and f.name.endswith((".nii", ".nii.gz"))]
    for path in files:
        image = read_image(path)
        if image.shape != shape or not np.allclose(image.affine, first.image.affine, atol=GRID_ATOL):
            raise MedSegError(f"Case {case_dir.name}: mask {path.name} (shape {image.shape}) is not on the image grid "
                              f"(shape {shape}); resample it onto the image first.")
        mask |= image.array[0] > 0
        found = True
    for obj in objects:
        if first.source is None:  # _objects_on refuses objects without a DICOM first channel
            raise MedSegError(f"Case {case_dir.name}: RT-STRUCT/SEG objects need the first channel read from DICOM.")
        names = [p for p in patterns if any(fnmatch.fnmatchcase(n.lower(), p.lower()) for n in obj.names)]
        if names:
            with warnings.catch_warnings():
                # ROIs united into one label may overlap: that is a union here, not a conflict
                warnings.filterwarnings("ignore", message=".*overlapping ROIs")
                result = label_map(obj, first.source, names)
            mask |= result.labels > 0
            found = True
    return mask if found else None
