"""Turning ``medseg predict`` inputs into cases to read and outputs to write."""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import MedSegError
from ..fileio import atomic_path
from ..images import Image, check_same_grid, find_cases, read_case, write_label_image
from ..images.colors import label_colors
from ..images.dicom import is_dicom_folder, read_dicom_series, write_dicom_seg
from ..images.nifti import NIFTI_SUFFIXES, check_nifti, check_regular_file, strip_nifti_suffix
from ..images.rtstruct_write import write_rtstruct
from .output_checks import check_outputs, parse_part

__all__ = ["Job", "plan_jobs", "parse_part", "probabilities_path", "write_probabilities"]

OUTPUT_FORMATS = ("nifti", "dicom-seg", "rtstruct")
DICOM_FORMATS = ("dicom-seg", "rtstruct")   # written as one .dcm file referencing the source series


@dataclass
class Job:
    name: str
    reader: Callable[[Sequence[str] | None], Image]
    output: Path             # label file (NIfTI) or DICOM-SEG file
    output_format: str = "nifti"
    files: Sequence[Path] = ()  # the case's NIfTI files (none for a DICOM series)

    def read(self, series: Sequence[str] | None = None) -> Image:
        return self.reader(series)

    def check(self) -> None:
        """The header of every file (type, size, geometry), before any case is predicted."""
        for path in self.files:
            check_nifti(path)

    def write(self, prediction, image: Image, predictor) -> list[Path]:
        source = getattr(image, "dicom_source", None)  # set by the DICOM reader
        if self.output_format in DICOM_FORMATS and source is None:
            raise MedSegError(f"{self.output_format} output needs DICOM input (it must reference the source series).")
        if self.output_format == "dicom-seg":
            written = [write_dicom_seg(prediction.labels, source, predictor.label_names, self.output)]
        elif self.output_format == "rtstruct":
            written = [write_rtstruct(prediction.labels, source, predictor.label_names, self.output,
                                      colors={v: c[:3] for v, c in label_colors(predictor.label_names,
                                                                                   _dataset_json(predictor)).items()})]
        else:
            written = [write_label_image(prediction.labels, image, self.output)]
        if prediction.probabilities is not None:
            try:
                written.append(write_probabilities(prediction.probabilities, self.output))
            except BaseException:  # a case is written whole or not at all
                written[0].unlink(missing_ok=True)
                raise
        return written


def _dataset_json(predictor) -> dict | None:
    """The model's dataset.json (its optional ``label_colors`` colour the ROIs)."""
    return getattr(getattr(predictor, "model", None), "dataset_json", None)


def probabilities_path(label_path: Path) -> Path:
    return label_path.with_name(strip_nifti_suffix(label_path.name).removesuffix(".dcm") + ".npz")


def write_probabilities(probabilities: np.ndarray, label_path: Path) -> Path:
    path = probabilities_path(label_path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, probabilities=probabilities.astype(np.float32))
    return path


def plan_jobs(inputs: Sequence[str], output: str, part: str = "1/1", output_format: str = "nifti",
              save_probabilities: bool = False, allow_output_inside_input: bool = False,
              extra_outputs: Callable[[Path], list[Path]] | None = None) -> list[Job]:
    """One job per case: several files = one case; a folder = its cases (or one DICOM series).

    Every output is checked here, before any case is read: never an input, never inside an input
    folder (unless ``allow_output_inside_input``), and writable.
    """
    k, n = parse_part(part)
    if output_format not in OUTPUT_FORMATS:
        raise MedSegError(f"Unknown output format {output_format!r}; choose one of {', '.join(OUTPUT_FORMATS)}.")
    paths = [Path(p) for p in inputs]
    for p in paths:
        if not p.exists():
            raise MedSegError(f"Input not found: {p}")
    if len(paths) == 1 and paths[0].is_dir():
        jobs, files = _folder_jobs(paths[0], Path(output), output_format)
        folders = [paths[0]]
    else:
        jobs, files, folders = [_files_job(paths, Path(output), output_format)], paths, []
    jobs = jobs[k - 1::n]
    outputs = [j.output for j in jobs] + ([probabilities_path(j.output) for j in jobs] if save_probabilities else [])
    outputs += [p for j in jobs for p in (extra_outputs(j.output) if extra_outputs else [])]  # --statistics, ...
    check_outputs(outputs, files, folders, allow_output_inside_input)
    return jobs


def _folder_jobs(folder: Path, out: Path, output_format: str) -> tuple[list[Job], list[Path]]:
    suffix = ".dcm" if output_format in DICOM_FORMATS else ".nii.gz"
    if is_dicom_folder(folder):
        target = out if out.name.endswith((suffix, ".nii")) else out / f"{folder.name}{suffix}"
        return [Job(folder.name, functools.partial(_read_dicom, folder), target, output_format)], []
    cases = find_cases(folder)
    if out.name.endswith(NIFTI_SUFFIXES):
        raise MedSegError(f"The input {folder} is a folder of cases, so the output must be a folder, not {out}.")
    jobs = [Job(c, _case_reader(cases[c]), out / f"{c}{suffix}", output_format,
                [Path(f) for f in cases[c]])
            for c in sorted(cases)]
    return jobs, [f for files in cases.values() for f in files]


def _files_job(paths: list[Path], out: Path, output_format: str) -> Job:
    suffix = ".dcm" if output_format in DICOM_FORMATS else ".nii.gz"
    for p in paths:
        if p.is_dir() or not p.name.endswith(NIFTI_SUFFIXES):
            raise MedSegError(f"{p} is not a NIfTI file; give one case's channel files, or one folder.")
        check_regular_file(p, "Input file")
    name = strip_nifti_suffix(paths[0].name)
    if name[-5:-4] == "_" and name[-4:].isdigit():
        name = name[:-5]
    target = out if out.name.endswith((suffix, ".nii")) else out / f"{name}{suffix}"
    return Job(name, lambda series: read_case(paths), target, output_format, [Path(p) for p in paths])


def _case_reader(files: Sequence[Path]) -> Callable[[Sequence[str] | None], Image]:
    """A Job reader for one case's NIfTI files (a DICOM series choice does not apply to them)."""
    return lambda series: read_case(files)


def _read_dicom(folder: Path, series: Sequence[str] | None) -> Image:
    """One series, or one series per channel (``--series T1 T2``), stacked on the first one's grid."""
    if not series or len(series) == 1:
        return read_dicom_series(folder, series[0] if series else None)
    channels = [read_dicom_series(folder, s) for s in series]
    check_same_grid(channels, [f"series {s}" for s in series])
    first = channels[0]
    image = Image(np.concatenate([c.array for c in channels]), first.spacing, first.affine, first.header)
    image.dicom_source = first.dicom_source  # the DICOM-SEG references the first series
    return image
