"""``medseg dataset verify``: find every problem in a raw dataset at once, in plain words.

Checks: dataset.json structure; each case has all channels and one label; the number of cases
matches ``numTraining``; channel suffixes are consistent; image and label grids (shape, spacing,
affine) agree; label values are the declared ones; no NaN/Inf; empty labels (a warning).
"""
from __future__ import annotations

import os
import re
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MedSegError
from ..fileio import read_json
from .dataset_json import RawDataset, check_dataset_json, scan_image_folder

GRID_ATOL = 1e-3  # mm; affines written by different tools differ in the last float digits


@dataclass
class Report:
    dataset: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    num_cases: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def format(self) -> str:
        lines = [f"Dataset {self.dataset}: {self.num_cases} training cases checked."]
        if self.errors:
            lines.append(f"{len(self.errors)} problem(s) to fix:")
            lines += [f"  - {e}" for e in self.errors]
        if self.warnings:
            lines.append(f"{len(self.warnings)} warning(s):")
            lines += [f"  - {w}" for w in self.warnings]
        if self.ok:
            lines.append("OK: the dataset is ready for planning." if not self.warnings else
                         "OK to plan, but read the warnings.")
        return "\n".join(lines)


def verify_dataset(folder: str | os.PathLike, num_processes: int = 1) -> Report:
    """Check a raw dataset folder and return a report listing every problem found."""
    folder = Path(folder)
    report = Report(folder.name)
    if not (folder / "dataset.json").is_file():
        report.errors.append(f"{folder / 'dataset.json'} is missing.")
        return report
    try:
        meta = read_json(folder / "dataset.json")
    except MedSegError as exc:
        report.errors.append(str(exc))
        return report
    problems = check_dataset_json(meta)
    report.errors += [f"dataset.json: {p}." for p in problems]
    if problems:
        return report
    dataset = RawDataset(folder, meta)
    if not dataset.file_ending.endswith((".nii.gz", ".nii")):
        report.errors.append(f"file_ending {dataset.file_ending!r}: only NIfTI (.nii.gz, .nii) is supported; convert "
                             "the images to NIfTI first.")
        return report
    cases = _check_layout(dataset, report)
    report.num_cases = len(cases)
    jobs = [(name, images, label, dataset.num_channels, sorted(dataset.label_values()))
            for name, images, label in cases]
    if num_processes > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(num_processes) as pool:
            results = list(pool.map(_check_case_job, jobs))
    else:
        results = [_check_case_job(job) for job in jobs]
    for errors, warnings in results:
        report.errors += errors
        report.warnings += warnings
    return report


def _check_layout(dataset: RawDataset, report: Report) -> list[tuple[str, list[Path], Path]]:
    """File-level checks; returns the cases whose files are all present, for the voxel checks."""
    images_dir, labels_dir = dataset.folder / "imagesTr", dataset.folder / "labelsTr"
    ending, n = dataset.file_ending, dataset.num_channels
    if "dataset" in dataset.meta:
        listed = [(c.name, c.images, c.label) for c in dataset.training_cases()]
    else:
        for d in (images_dir, labels_dir):
            if not d.is_dir():
                report.errors.append(f"Folder {d.name}/ is missing from {dataset.folder}.")
        _report_stray_files(images_dir, ending, report, channel_suffix=True)
        _report_stray_files(labels_dir, ending, report, channel_suffix=False)
        listed = [(c.name, c.images, c.label) for c in dataset.training_cases()]
        image_cases = {name for name, _, _ in listed}
        if labels_dir.is_dir():
            for path in sorted(labels_dir.iterdir()):
                if path.name.endswith(ending) and path.name[: -len(ending)] not in image_cases:
                    report.errors.append(f"labelsTr/{path.name} has no images in imagesTr/ "
                                         f"(expected {path.name[: -len(ending)]}_0000{ending}).")
        _check_test_folder(dataset, report)
    if len(listed) != dataset.meta["numTraining"]:
        report.errors.append(f"dataset.json says numTraining = {dataset.meta['numTraining']} but {len(listed)} "
                             "training cases were found; correct numTraining or add the missing cases.")
    complete = []
    for name, images, label in listed:
        missing = [p.name for p in images if not p.is_file()]
        if len(images) < n:
            missing += [f"{name}_{i:04d}{ending}" for i in range(len(images), n)]
        if len(images) > n:
            report.errors.append(f"Case {name} has {len(images)} channel files but dataset.json declares {n} "
                                 f"channel(s) ({', '.join(dataset.channel_names.values())}).")
        if missing:
            report.errors.append(f"Case {name} is missing channel file(s): {', '.join(missing)}.")
        if not label.is_file():
            report.errors.append(f"Case {name} has no label file ({label.name} expected in labelsTr/).")
        if not missing and label.is_file() and len(images) == n:
            complete.append((name, images, label))
    return complete


def _report_stray_files(folder: Path, ending: str, report: Report, channel_suffix: bool) -> None:
    """Files that will be silently ignored by planning: wrong extension or wrong channel suffix."""
    if not folder.is_dir():
        return
    pattern = re.compile(rf"^.+_\d{{4}}{re.escape(ending)}$")
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        if not path.name.endswith(ending):
            report.errors.append(f"{folder.name}/{path.name} does not end in {ending!r} (dataset.json file_ending); "
                                 "rename or convert it.")
        elif channel_suffix and not pattern.match(path.name):
            report.errors.append(f"{folder.name}/{path.name} lacks the 4-digit channel suffix "
                                 f"(e.g. CASE_0000{ending}); rename it.")


def _check_test_folder(dataset: RawDataset, report: Report) -> None:
    folder = dataset.folder / "imagesTs"
    if not folder.is_dir():
        return
    _report_stray_files(folder, dataset.file_ending, report, channel_suffix=True)
    for name, files in scan_image_folder(folder, dataset.file_ending).items():
        present = [p for p in files if p.is_file()]
        if len(files) != dataset.num_channels or len(present) != len(files):
            report.errors.append(f"Test case imagesTs/{name} has channel files "
                                 f"{[p.name for p in present]}; expected {dataset.num_channels}.")


def _check_case_job(job) -> tuple[list[str], list[str]]:
    name, images, label, num_channels, allowed = job
    errors: list[str] = []
    warnings: list[str] = []
    try:
        _check_case(name, images, label, set(allowed), errors, warnings)
    except MedSegError as exc:
        errors.append(f"Case {name}: {exc}")
    except (OSError, EOFError, ValueError, MemoryError, zlib.error) as exc:
        # a truncated or corrupt file fails when its voxels are read; in a worker process an
        # exception would end the whole check with a traceback instead of one line in the report
        errors.append(f"Case {name}: cannot read its files ({type(exc).__name__}: {str(exc)[:200]}); "
                      "the file is damaged or truncated.")
    return errors, warnings


def _check_case(name: str, images: list[Path], label: Path, allowed: set[int], errors: list[str],
                warnings: list[str]) -> None:
    seg_img = _load(label)
    seg = np.asanyarray(seg_img.dataobj)
    if seg.ndim == 4 and seg.shape[3] == 1:
        seg = seg[..., 0]
    if seg.ndim != 3:
        errors.append(f"Case {name}: label {label.name} has shape {seg.shape}; a label must be one 3D volume "
                      "(merge several masks into one map with `medseg dataset convert multimask`).")
        return
    for path in images:
        img = _load(path)
        problem = _grid_difference(img, seg_img, seg.shape)
        if problem:
            errors.append(f"Case {name}: {path.name} and label {label.name} are on different grids ({problem}); "
                          "resample the label onto the image grid.")
        data = np.asanyarray(img.dataobj)
        if data.dtype.kind == "f" and not np.isfinite(data).all():
            bad = int((~np.isfinite(data)).sum())
            errors.append(f"Case {name}: {path.name} has {bad} NaN/infinite voxel(s); replace them (e.g. with 0).")
    if seg.dtype.kind == "f":
        if not np.isfinite(seg).all():
            errors.append(f"Case {name}: label {label.name} has NaN/infinite voxels.")
            return
        if np.any(seg != np.round(seg)):
            errors.append(f"Case {name}: label {label.name} has non-integer values (was it resampled with "
                          "interpolation? Use nearest neighbour).")
            return
    values = {int(v) for v in np.unique(seg)}
    unexpected = sorted(values - allowed)
    if unexpected:
        errors.append(f"Case {name}: label {label.name} contains value(s) {unexpected} that dataset.json does not "
                      f"declare (declared: {sorted(allowed)}).")
    if values <= {0}:
        warnings.append(f"Case {name}: label {label.name} is empty (background only).")


def _load(path: Path):
    import nibabel as nib
    try:
        return nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for broken files
        raise MedSegError(f"cannot read {path.name} ({exc})") from exc


def _grid_difference(img, seg_img, seg_shape) -> str | None:
    shape = img.shape[:3] if len(img.shape) >= 3 else tuple(img.shape) + (1,)
    if tuple(shape) != tuple(seg_shape):
        return f"shape {tuple(shape)} vs {tuple(seg_shape)}"
    zooms, seg_zooms = img.header.get_zooms()[:3], seg_img.header.get_zooms()[:3]
    if not np.allclose(zooms, seg_zooms, atol=GRID_ATOL, rtol=1e-4):
        return f"spacing {tuple(round(float(z), 4) for z in zooms)} vs {tuple(round(float(z), 4) for z in seg_zooms)}"
    if not np.allclose(img.affine, seg_img.affine, atol=GRID_ATOL, rtol=1e-4):
        return "origin or orientation (affines differ)"
    return None
