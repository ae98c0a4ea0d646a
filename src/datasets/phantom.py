"""Synthetic BraTS-like head phantoms: four MRI-like channels and nested tumour regions.

Each phantom is a skull-stripped "brain" (zero outside, as in BraTS) with white matter, a
folded grey-matter cortex, CSF ventricles and a tumour of three nested parts: a necrotic core
inside an enhancing rim inside an irregular oedema. Every tissue has its own contrast in T1,
T1ce, T2 and FLAIR, chosen like real MRI (enhancement only in T1ce, oedema bright in FLAIR,
CSF dark in FLAIR), so a network has to combine channels to tell the parts apart. On top come
blur, a smooth bias field per channel, Rician noise, a scanner gain per channel, and varied
spacing and orientation. Labels follow ``medseg dataset convert brats``: 1 oedema, 2 necrosis,
3 enhancing; regions whole tumour {1,2,3}, tumour core {2,3}, enhancing {3}.

Used by the tests, the embedded demo model's training data, the demo case and the benchmarks.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from ..fileio import atomic_path
from .convert_brats import CHANNEL_NAMES, REGION_LABELS
from .layout import create_dataset_folder, write_dataset_json

CHANNELS = ("T1", "T1ce", "T2", "Flair")
EDEMA, NECROSIS, ENHANCING = 1, 2, 3
# Mean intensity of each tissue in (T1, T1ce, T2, FLAIR), in arbitrary scanner units.
TISSUES = {
    "white_matter": (110.0, 112.0, 65.0, 85.0),
    "grey_matter": (80.0, 84.0, 95.0, 100.0),
    "csf": (30.0, 32.0, 190.0, 30.0),
    "edema": (72.0, 76.0, 150.0, 165.0),
    "necrosis": (45.0, 50.0, 175.0, 70.0),
    "enhancing": (78.0, 185.0, 115.0, 125.0),
}
NOISE_SD = 6.0
BRAIN_RADII_MM = (45.0, 56.0, 46.0)  # (z, y, x): a small head keeps CPU training and the demo quick
MARGIN_MM = 8.0


@dataclass
class Phantom:
    """One case: ``image`` int16 (4, z, y, x), ``labels`` uint8 (z, y, x), spacing (z, y, x) mm, NIfTI affine."""

    image: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray


def physical_grid(shape: Sequence[int], spacing: Sequence[float]) -> list[np.ndarray]:
    """Voxel-centre coordinates in mm along (z, y, x), broadcastable to ``shape``."""
    return [np.arange(n, dtype=np.float64).reshape([-1 if a == i else 1 for a in range(3)]) * s
            for i, (n, s) in enumerate(zip(shape, spacing))]


def ellipsoid(grid: list[np.ndarray], centre, radii) -> np.ndarray:
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1.0


def radial(grid: list[np.ndarray], centre, radii) -> tuple[np.ndarray, list[np.ndarray]]:
    """Normalised radius (1 on the ellipsoid's surface) and the unit direction at each voxel."""
    rel = [(g - c) / r for g, c, r in zip(grid, centre, radii)]
    q = np.sqrt(sum(r ** 2 for r in rel)) + 1e-9
    return q, [r / q for r in rel]


def bumpy(direction: list[np.ndarray], rng: np.random.Generator, amplitude: float, terms: int = 4) -> np.ndarray:
    """A smooth random modulation of a surface: sum of low-frequency waves over the direction."""
    out = np.ones_like(direction[0], dtype=np.float64)
    for _ in range(terms):
        v = rng.normal(size=3)
        v /= np.linalg.norm(v)
        dot = sum(d * c for d, c in zip(direction, v))
        out = out + amplitude * np.cos(rng.integers(2, 6) * np.pi * dot + rng.uniform(0, 2 * np.pi)) / terms
    return out


def _tumour(grid, rng, brain_centre, brain_radii) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks (oedema blob, enhancing ball, necrotic ball), not yet clipped to the brain or nested."""
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    centre = np.asarray(brain_centre) + direction * np.asarray(brain_radii) * rng.uniform(0.2, 0.45)
    edema_r = rng.uniform(16, 26)
    q, d = radial(grid, centre, edema_r * rng.uniform(0.8, 1.2, 3))
    edema = q <= bumpy(d, rng, 0.35)
    edema |= ellipsoid(grid, centre + rng.normal(scale=edema_r * 0.4, size=3), [edema_r * rng.uniform(0.5, 0.8)] * 3)
    core_centre = centre + rng.normal(scale=1.5, size=3)
    enh_r = edema_r * rng.uniform(0.5, 0.75)
    q, d = radial(grid, core_centre, enh_r * rng.uniform(0.85, 1.15, 3))
    enhancing = q <= bumpy(d, rng, 0.15)
    necrosis_frac = rng.uniform(0.5, 0.8)
    necrosis = q <= bumpy(d, rng, 0.1) * necrosis_frac
    return edema, enhancing, necrosis


def make_phantom(rng: np.random.Generator, spacing: Sequence[float] | None = None,
                 rotate: bool = True, shape: Sequence[int] | None = None) -> Phantom:
    """One random phantom; ``spacing`` (z, y, x) mm defaults to a random, sometimes anisotropic one.

    ``shape`` fixes the grid (e.g. BraTS's 155 x 240 x 240 at 1 mm) and scales the brain to fill it.
    """
    if spacing is None:
        inplane = rng.uniform(1.8, 2.4)
        spacing = (rng.uniform(1.8, 3.2), inplane, inplane)
    z, y, x = (float(s) for s in spacing)
    spacing = (z, y, x)
    if shape is None:
        radii = np.array(BRAIN_RADII_MM) * rng.uniform(0.9, 1.1, 3)
        extent = 2 * radii + 2 * MARGIN_MM
        shape = tuple(int(np.ceil(e / s)) for e, s in zip(extent, spacing))
    else:
        extent = np.array(shape, float) * spacing
        radii = extent * rng.uniform(0.4, 0.45, 3)
    shape = tuple(int(n) for n in shape)
    grid = physical_grid(shape, spacing)
    centre = extent / 2 + rng.uniform(-2, 2, 3)

    q, d = radial(grid, centre, radii)
    brain = q <= bumpy(d, rng, 0.08)
    cortex_depth = 0.8 + 0.06 * np.cos(rng.integers(6, 10) * np.pi * d[2] + rng.uniform(0, 6)) * np.sin(
        rng.integers(5, 9) * np.pi * d[1])  # gyri: the grey-white border folds
    tissue = np.zeros(shape, np.uint8)  # 0 outside, 1 WM, 2 GM, 3 CSF
    tissue[brain] = 1
    tissue[brain & (q > cortex_depth)] = 2
    for side in (-1, 1):
        v_centre = centre + np.array([rng.uniform(-2, 4), rng.uniform(-4, 4), side * radii[2] * rng.uniform(0.12, 0.2)])
        tissue[brain & ellipsoid(grid, v_centre, radii * [0.22, 0.35, 0.09] * rng.uniform(0.8, 1.2, 3))] = 3

    edema, enhancing, necrosis = _tumour(grid, rng, centre, radii)
    labels = np.zeros(shape, np.uint8)
    labels[edema & brain] = EDEMA
    labels[enhancing & brain] = ENHANCING
    labels[necrosis & enhancing & brain] = NECROSIS
    return Phantom(_render(tissue, labels, spacing, rng), labels, spacing, _random_affine(spacing, rng, rotate))


def _render(tissue: np.ndarray, labels: np.ndarray, spacing, rng: np.random.Generator) -> np.ndarray:
    """MRI-like channels from the tissue and label maps: contrast, blur, bias field, Rician noise, gain."""
    from scipy.ndimage import gaussian_filter
    names = {1: "white_matter", 2: "grey_matter", 3: "csf"}
    brain = tissue > 0
    grid = [g / g.max() - 0.5 for g in physical_grid(tissue.shape, (1, 1, 1))]
    image = np.zeros((len(CHANNELS),) + tissue.shape, np.float32)
    for c in range(len(CHANNELS)):
        ch = np.zeros(tissue.shape, np.float64)
        for value, name in names.items():
            ch[tissue == value] = TISSUES[name][c]
        for label, name in ((EDEMA, "edema"), (NECROSIS, "necrosis"), (ENHANCING, "enhancing")):
            ch[labels == label] = TISSUES[name][c]
        ch = gaussian_filter(ch, sigma=[0.6 / s * 2 for s in spacing])  # partial volume at ~2 mm
        bias = np.exp(sum(rng.uniform(-0.25, 0.25) * g + rng.uniform(-0.3, 0.3) * g ** 2 for g in grid))
        ch = ch * bias
        ch = np.hypot(ch + rng.normal(scale=NOISE_SD, size=ch.shape), rng.normal(scale=NOISE_SD, size=ch.shape))
        ch *= rng.uniform(0.8, 1.25)
        ch[~brain] = 0.0
        image[c] = np.maximum(ch, brain)  # the brain stays strictly non-zero, so the crop finds it
    return np.round(image).astype(np.int16)


def _random_affine(spacing, rng: np.random.Generator, rotate: bool) -> np.ndarray:
    """RAS affine for a (z, y, x) array: random origin, a tilt, and sometimes LPS-like axis flips."""
    angles = np.deg2rad(rng.uniform(-20, 20, 2)) if rotate else np.zeros(2)
    cz, sz = np.cos(angles[0]), np.sin(angles[0])
    cx, sx = np.cos(angles[1]), np.sin(angles[1])
    rot = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]) @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    if rotate and rng.uniform() < 0.5:
        rot = np.diag([-1.0, -1.0, 1.0]) @ rot
    return affine_for(spacing, rng.uniform(-80, -40, 3), rot)


def affine_for(spacing_zyx: Sequence[float], origin_xyz=(0.0, 0.0, 0.0),
               rotation: np.ndarray | None = None) -> np.ndarray:
    """NIfTI affine mapping voxel (i=x, j=y, k=z) to RAS mm for an array stored as (z, y, x)."""
    aff = np.eye(4)
    aff[:3, :3] = (np.eye(3) if rotation is None else rotation) @ np.diag(list(spacing_zyx)[::-1])
    aff[:3, 3] = origin_xyz
    return aff


def save_nifti(array_zyx: np.ndarray, affine: np.ndarray, path: str | os.PathLike) -> None:
    """Write a (z, y, x) array as NIfTI (stored as (x, y, z)), atomically."""
    img = nib.Nifti1Image(np.ascontiguousarray(array_zyx.transpose(2, 1, 0)), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))


def save_case(phantom: Phantom, images_dir: Path, labels_dir: Path | None, name: str) -> None:
    """Write ``name_0000..0003.nii.gz`` (and ``name.nii.gz`` labels) in nnU-Net's naming."""
    for c in range(phantom.image.shape[0]):
        save_nifti(phantom.image[c], phantom.affine, images_dir / f"{name}_{c:04d}.nii.gz")
    if labels_dir is not None:
        save_nifti(phantom.labels, phantom.affine, labels_dir / f"{name}.nii.gz")


def write_dataset(raw_root: str | os.PathLike, dataset_id: int, num_training: int, num_test: int = 0,
                  seed: int = 0, name: str = "BraTSPhantom", progress=None) -> Path:
    """A region-based raw dataset of phantoms (``imagesTr``/``labelsTr``, held-out ``imagesTs``/``labelsTs``)."""
    rng = np.random.default_rng(seed)
    folder = create_dataset_folder(raw_root, dataset_id, name)
    try:
        if num_test:
            (folder / "imagesTs").mkdir()
            (folder / "labelsTs").mkdir()
        total = num_training + num_test
        for i in range(total):
            test = i >= num_training
            sub = ("imagesTs", "labelsTs") if test else ("imagesTr", "labelsTr")
            save_case(make_phantom(rng), folder / sub[0], folder / sub[1], f"phantom_{i:03d}")
            if progress:
                progress((i + 1) / total, f"{i + 1}/{total}")
        write_dataset_json(folder, CHANNEL_NAMES, REGION_LABELS, num_training, regions_class_order=[1, 2, 3],
                           extra={"description": f"MedSeg synthetic BraTS-like phantoms (seed {seed}): labels "
                                                 "1 edema, 2 necrosis, 3 enhancing; regions WT/TC/ET",
                                  "licence": "CC0-1.0"})
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder
