"""Synthetic two-channel "head" phantoms for the nnU-Net parity fixtures (the geometry helpers are the
package's, ``chimerax.medseg.datasets.phantom``, whose four-channel BraTS-like phantoms train the demo model).

A head is an ellipsoid of brain tissue surrounded by exact zeros (so nnU-Net's crop to the
non-zero box matters); inside it sits an unlabelled ventricle and a lesion made of an edema
shell (label 1) around a core (label 2). Each label has its own contrast in the two channels,
plus noise, so a network has to combine both channels to separate them.
"""
from __future__ import annotations

import numpy as np

from chimerax.medseg.datasets import phantom
from chimerax.medseg.datasets.phantom import ellipsoid, physical_grid, save_nifti  # noqa: F401  (save_nifti: for the fixtures script)

# (T1, T2) mean intensities per tissue; chosen so that no single channel separates all labels.
BRAIN = (100.0, 60.0)
VENTRICLE = (40.0, 150.0)
EDEMA = (70.0, 140.0)
CORE = (160.0, 100.0)
NOISE_SD = 8.0


def make_phantom(rng: np.random.Generator, shape: tuple[int, int, int],
                 spacing: tuple[float, float, float], head_centre_mm=None, head_radii_mm=None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Return (image int16 (2, z, y, x), labels uint8 (z, y, x))."""
    grid = physical_grid(shape, spacing)
    extent = np.array(shape) * np.array(spacing)
    if head_centre_mm is None:
        head_centre_mm = extent / 2 + rng.uniform(-3, 3, 3)
    if head_radii_mm is None:
        head_radii_mm = extent * rng.uniform(0.36, 0.42, 3)
    head_centre_mm = np.asarray(head_centre_mm, float)
    head_radii_mm = np.asarray(head_radii_mm, float)
    head = ellipsoid(grid, head_centre_mm, head_radii_mm)

    ventricle = ellipsoid(grid, head_centre_mm + rng.uniform(-2, 2, 3), head_radii_mm * [0.25, 0.2, 0.35])
    # The lesion sits off-centre, inside the head, away from the ventricle's middle.
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    lesion_centre = head_centre_mm + direction * head_radii_mm * rng.uniform(0.25, 0.4)
    edema_r = rng.uniform(10, 15)
    edema = ellipsoid(grid, lesion_centre, edema_r * rng.uniform(0.8, 1.2, 3))
    # A second lobe makes the edema less regular than a single ellipsoid.
    edema |= ellipsoid(grid, lesion_centre + rng.normal(scale=3, size=3), [edema_r * 0.7] * 3)
    core = ellipsoid(grid, lesion_centre + rng.normal(scale=1, size=3), edema_r * rng.uniform(0.5, 0.65, 3))
    edema &= head
    core &= edema

    labels = np.zeros(shape, np.uint8)
    labels[edema] = 1
    labels[core] = 2

    image = np.zeros((2,) + tuple(shape), np.float64)
    gain = rng.uniform(0.85, 1.15, 2)  # scanner gain per channel: z-scoring must remove it
    for c in range(2):
        ch = np.zeros(shape)
        ch[head] = BRAIN[c]
        ch[ventricle & head] = VENTRICLE[c]
        ch[edema] = EDEMA[c]
        ch[core] = CORE[c]
        ch += rng.normal(scale=NOISE_SD, size=shape)
        ch = np.clip(ch * gain[c], 1, None)  # keep the head strictly non-zero
        ch[~head] = 0.0
        image[c] = ch
    return np.round(image).astype(np.int16), labels


def affine_for(spacing_zyx, origin_xyz=(0.0, 0.0, 0.0), rotation_deg_about_z: float = 0.0,
               flip_xy: bool = False) -> np.ndarray:
    """NIfTI affine for a (z, y, x) array, rotated about z and optionally flipped in x and y."""
    t = np.deg2rad(rotation_deg_about_z)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    if flip_xy:
        rot = np.diag([-1.0, -1.0, 1.0]) @ rot
    return phantom.affine_for(spacing_zyx, origin_xyz, rot)
