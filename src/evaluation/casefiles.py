"""Finding, pairing and loading prediction / reference label maps, with grid checks."""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MedSegError
from ..images import read_image
from ..images.nifti import NIFTI_SUFFIXES, strip_nifti_suffix
from .metrics import as_label_array


@dataclass
class LabelMap:
    """A label map (z, y, x) with its grid."""

    labels: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray

    @classmethod
    def read(cls, path: str | os.PathLike) -> LabelMap:
        image = read_image(path)
        if image.num_channels != 1:
            raise MedSegError(f"{path} has {image.num_channels} channels; a label map has one.")
        return cls(as_label_array(image.array[0], str(path)), image.spacing, image.affine)


def label_files(folder: str | os.PathLike) -> dict[str, Path]:
    """Case name -> label map file for every NIfTI file in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MedSegError(f"Folder not found: {folder}")
    files = {strip_nifti_suffix(p.name): p for p in sorted(folder.iterdir())
             if p.is_file() and p.name.endswith(NIFTI_SUFFIXES) and not p.name.startswith(".")}
    if not files:
        raise MedSegError(f"No label maps (.nii, .nii.gz) found in {folder}.")
    return files


def _names(cases: Iterable[str], limit: int = 5) -> str:
    ordered = sorted(cases)
    more = f" and {len(ordered) - limit} more" if len(ordered) > limit else ""
    return ", ".join(ordered[:limit]) + more


def pair_cases(pred_dir: str | os.PathLike, ref_dirs: Sequence[str | os.PathLike],
               missing_as_empty: bool = False) -> tuple[list[str], dict[str, Path], list[dict[str, Path]], list[str]]:
    """Match cases by file name.

    Returns (cases, prediction files, one file dict per reference folder, notes). The cases are
    those of the first reference folder that have a prediction (e.g. one fold's validation cases
    against the whole dataset's labels), and a note says how many matched; with
    ``missing_as_empty`` every reference case is scored, a missing prediction as an empty one.
    Every other reference folder must hold all the scored cases.
    """
    preds = label_files(pred_dir)
    refs = [label_files(d) for d in ref_dirs]
    matched = sorted(set(refs[0]) & set(preds))
    if not matched and not missing_as_empty:
        raise MedSegError(f"No case of {ref_dirs[0]} has a prediction in {pred_dir} (file names must match).")
    cases = sorted(refs[0]) if missing_as_empty else matched
    notes = []
    for folder, files in zip(ref_dirs[1:], refs[1:]):
        absent = set(cases) - set(files)
        if absent:
            raise MedSegError(f"Reference folder {folder} lacks {len(absent)} scored case(s) of {ref_dirs[0]}: "
                              f"{_names(absent)}. Give every reference folder the same cases.")
    missing = set(refs[0]) - set(preds)
    if missing and missing_as_empty:
        notes.append(f"{len(missing)} case(s) without a prediction were scored as empty predictions: "
                     f"{_names(missing)}.")
    elif missing:
        notes.append(f"Matched {len(matched)} of the {len(refs[0])} reference cases in {ref_dirs[0]}; the "
                     f"{len(missing)} without a prediction were left out ({_names(missing)}); pass "
                     "--missing-as-empty to score them as empty predictions.")
    extra = set(preds) - set(refs[0])
    if extra:
        notes.append(f"{len(extra)} prediction(s) without a reference were not evaluated: {_names(extra)}.")
    return cases, preds, refs, notes


def same_grid(a: LabelMap, b: LabelMap, atol: float = 1e-3) -> bool:
    return a.labels.shape == b.labels.shape and np.allclose(a.affine, b.affine, atol=atol)


def describe_grid(m: LabelMap) -> str:
    origin = ", ".join(f"{v:.2f}" for v in m.affine[:3, 3])
    spacing = ", ".join(f"{v:.3g}" for v in m.spacing)
    return f"shape {m.labels.shape} (z, y, x), spacing ({spacing}) mm, origin ({origin})"


def onto_reference_grid(pred: LabelMap, ref: LabelMap, case: str, resample: bool) -> tuple[np.ndarray, bool]:
    """The prediction's labels on the reference grid; (labels, whether it was resampled).

    A different grid is refused unless ``resample``: then the prediction is resampled onto the
    reference grid by nearest neighbour through both affines (world coordinates).
    """
    if same_grid(pred, ref):
        return pred.labels, False
    if not resample:
        raise MedSegError(f"Case {case}: the prediction ({describe_grid(pred)}) is not on the reference's grid "
                          f"({describe_grid(ref)}). Predict on the reference's image, or pass --resample to "
                          "resample the prediction onto the reference grid (nearest neighbour).")
    return resample_labels(pred.labels, pred.affine, ref.labels.shape, ref.affine), True


def resample_labels(labels: np.ndarray, affine: np.ndarray, shape: Sequence[int],
                    target_affine: np.ndarray) -> np.ndarray:
    """Nearest-neighbour resampling of a (z, y, x) label map onto another grid (NIfTI affines)."""
    from scipy import ndimage
    ijk = np.linalg.inv(affine) @ target_affine  # target voxel (i, j, k) -> source voxel (i, j, k)
    # Arrays are indexed (z, y, x) = (k, j, i): reverse the axes of the mapping.
    matrix, offset = ijk[:3, :3][::-1, ::-1], ijk[:3, 3][::-1]
    return ndimage.affine_transform(labels, matrix, offset=offset, output_shape=tuple(shape), order=0,
                                    mode="constant", cval=0)
