"""``medseg dicom``: list the series in a DICOM folder and convert one (or all) to NIfTI.

RT-STRUCT and SEG objects referencing a converted series become label NIfTIs beside it
(``<name>_rtstruct.nii.gz`` / ``<name>_seg.nii.gz``) with a JSON sidecar naming each label.
"""
from __future__ import annotations

import argparse
import re
import sys
import warnings
from pathlib import Path

from ..errors import MedSegError
from .dicom_discovery import SeriesInfo
from .dicom_labels import (
    LabelObject,
    find_label_objects,
    label_map,
    referenced_series,
    select_names,
    write_label_result,
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "dicom", help="list DICOM series and convert them to NIfTI",
        description="List the image series in a DICOM folder tree (any file names) and convert one to NIfTI "
                    "on dcm2niix's grid. Without -o only the list is printed.")
    p.add_argument("folder", help="folder holding the DICOM files (searched recursively)")
    p.add_argument("-o", "--output", help="output .nii/.nii.gz file, or a folder (one file per converted series)")
    p.add_argument("-s", "--series", help="series to convert: number, description, SeriesInstanceUID or id")
    p.add_argument("--all", action="store_true", help="convert every series into the output folder")
    p.add_argument("--resample-uneven", action="store_true",
                   help="interpolate unevenly spaced slices onto an even grid instead of refusing them")
    p.add_argument("--roi", nargs="+", metavar="PATTERN",
                   help="RT-STRUCT ROIs / SEG segments to convert, in label order (glob patterns, e.g. 'GTV*'); "
                        "where they overlap the later one wins. Default: all, in file order")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .dicom import format_series_list, list_dicom_series  # loaded when the command runs (fast start-up)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        infos = list_dicom_series(args.folder)
    _print_warnings(caught)
    if not infos:
        raise MedSegError(f"No DICOM image series found in {args.folder}: no DICOM files with image geometry.")
    objects = find_label_objects(args.folder)
    if not args.output:
        print(format_series_list(infos))
        for obj in objects:
            print(_describe_object(obj, infos))
        return 0
    if args.all and args.output.endswith((".nii", ".nii.gz")):
        raise MedSegError("--all writes one file per series: give an output folder, not a file name.")
    # every object's series and ROI selection is checked before anything is converted
    targets = {id(obj): referenced_series(obj, infos, args.folder) for obj in objects}
    for obj in objects:
        select_names(obj.names, args.roi, obj.path.name)
    selectors = [info.id for info in infos] if args.all else [args.series]
    failures = 0
    used: set[str] = set()
    done: set[str] = set()
    for selector in selectors:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                written, info = _convert(args, selector, Path(args.output), used, objects, targets)
            _print_warnings(caught)
        except MedSegError as exc:
            if not args.all:
                raise
            print(f"medseg: error: {exc}", file=sys.stderr)
            failures += 1
            continue
        done.add(info.id)
        for path in written:
            print(f"wrote {path}")
    for obj in objects:
        if targets[id(obj)].id not in done:
            print(f"note: {obj.path.name} not converted: it references series {targets[id(obj)].number} "
                  f"({targets[id(obj)].description}), which was not converted", file=sys.stderr)
    return 1 if failures else 0


def _describe_object(obj: LabelObject, infos) -> str:
    try:
        info = referenced_series(obj, infos, "the folder")
        on = f"on series {info.number} ({info.description or info.id})"
    except MedSegError:
        on = f"on series {', '.join(obj.series_uids) or '?'} (NOT in the folder)"
    return f"      {obj.modality:<8} {obj.path.name} '{obj.label}' {on}: {', '.join(obj.names) or 'no ROIs'}"


def _convert(args: argparse.Namespace, selector: str | None, target: Path, used: set,
             objects: list[LabelObject], targets: dict) -> tuple[list[Path], SeriesInfo]:
    """Convert one series and the label objects on it; a folder target gets files named after the series."""
    from .dicom import (  # loaded when the command runs (fast start-up)
        list_dicom_series,
        read_dicom_volume,
        write_volume_nifti,
    )
    from .dicom_discovery import select_series  # loaded when the command runs (fast start-up)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = select_series(list_dicom_series(args.folder), selector, Path(args.folder))
    if not target.name.endswith((".nii", ".nii.gz")):
        stem = _file_stem(info)
        if stem in used:  # two series with the same number and description
            stem = f"{stem}_{len(used) + 1}"
        used.add(stem)
        target = target / f"{stem}.nii.gz"
    image, source = read_dicom_volume(args.folder, info.id, resample_uneven=args.resample_uneven)
    mine = [obj for obj in objects if targets[id(obj)].id == info.id]
    # all label maps are made before anything is written: a bad contour leaves no partial output
    results = [(obj, label_map(obj, source, args.roi)) for obj in mine]
    written = [write_volume_nifti(image, target)]
    for (obj, result), path in zip(results, _label_paths(target, [obj for obj, _ in results])):
        written += write_label_result(result, obj, image, path)
    return written, info


def _label_paths(image_path: Path, objects: list[LabelObject]) -> list[Path]:
    """``<name>_rtstruct.nii.gz`` / ``<name>_seg.nii.gz``; several of a kind add their label."""
    base = image_path.name.removesuffix(".gz").removesuffix(".nii")
    kinds = [obj.kind for obj in objects]
    paths, taken = [], set()
    for obj in objects:
        middle = f"_{_safe(obj.label)}" if kinds.count(obj.kind) > 1 else ""
        name = f"{base}{middle}_{obj.kind}"
        while name in taken:
            name += "_2"
        taken.add(name)
        paths.append(image_path.with_name(f"{name}.nii.gz"))
    return paths


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_") or "labels"


def _file_stem(info) -> str:
    """'<number>_<description>' made safe for file names, with the part for split series."""
    words = [str(info.number) if info.number is not None else "series", info.description or info.modality]
    if "#" in info.id:
        words.append(f"part{info.id.rpartition('#')[2]}")
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", "_".join(w for w in words if w)).strip("_")


def _print_warnings(caught) -> None:
    for item in caught:
        print(f"medseg: warning: {item.message}", file=sys.stderr)
