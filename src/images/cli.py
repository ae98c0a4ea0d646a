"""``medseg dicom``: list the series in a DICOM folder and convert one (or all) to NIfTI."""
from __future__ import annotations

import argparse
import re
import sys
import warnings
from pathlib import Path

from ..errors import MedSegError


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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .dicom import format_series_list, list_dicom_series

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        infos = list_dicom_series(args.folder)
    _print_warnings(caught)
    if not infos:
        raise MedSegError(f"No DICOM image series found in {args.folder}: no DICOM files with image geometry.")
    if not args.output:
        print(format_series_list(infos))
        return 0
    if args.all and args.output.endswith((".nii", ".nii.gz")):
        raise MedSegError("--all writes one file per series: give an output folder, not a file name.")
    selectors = [info.id for info in infos] if args.all else [args.series]
    failures, used = 0, set()
    for selector in selectors:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                written = _convert(args, selector, Path(args.output), used)
            _print_warnings(caught)
        except MedSegError as exc:
            if not args.all:
                raise
            print(f"medseg: error: {exc}", file=sys.stderr)
            failures += 1
            continue
        print(f"wrote {written}")
    return 1 if failures else 0


def _convert(args: argparse.Namespace, selector: str | None, target: Path, used: set) -> Path:
    """Convert one series; a folder target gets a file named after the series."""
    from .dicom import dicom_to_nifti, list_dicom_series
    from .dicom_discovery import select_series
    if not target.name.endswith((".nii", ".nii.gz")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            info = select_series(list_dicom_series(args.folder), selector, Path(args.folder))
        stem = _file_stem(info)
        if stem in used:  # two series with the same number and description
            stem = f"{stem}_{len(used) + 1}"
        used.add(stem)
        target = target / f"{stem}.nii.gz"
        selector = info.id
    return dicom_to_nifti(args.folder, target, selector, resample_uneven=args.resample_uneven)


def _file_stem(info) -> str:
    """'<number>_<description>' made safe for file names, with the part for split series."""
    words = [str(info.number) if info.number is not None else "series", info.description or info.modality]
    if "#" in info.id:
        words.append(f"part{info.id.rpartition('#')[2]}")
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", "_".join(w for w in words if w)).strip("_")


def _print_warnings(caught) -> None:
    for item in caught:
        print(f"medseg: warning: {item.message}", file=sys.stderr)
