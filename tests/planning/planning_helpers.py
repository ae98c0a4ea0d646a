"""Small synthetic raw datasets (real NIfTI files) and a runner for the real nnU-Net as an oracle."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np


def affine_for(spacing_zyx, origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    affine = np.diag([spacing_zyx[2], spacing_zyx[1], spacing_zyx[0], 1.0])
    affine[:3, 3] = origin
    return affine


def write_volume(path: Path, array_zyx: np.ndarray, spacing_zyx, dtype=np.float32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nii = nib.Nifti1Image(np.ascontiguousarray(array_zyx.transpose(2, 1, 0)).astype(dtype), affine_for(spacing_zyx))
    nib.save(nii, str(path))


def make_case(rng, shape, channels, labels, border=0, ct=False):
    """Image channels with a blob-shaped foreground; zero border of ``border`` voxels (cropped away)."""
    zz, yy, xx = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    radius = np.sqrt(zz ** 2 + yy ** 2 + xx ** 2)
    seg = np.zeros(shape, np.uint8)
    for value in range(1, labels + 1):
        seg[radius < 0.7 / value] = value
    images = []
    for c in range(channels):
        base = (rng.normal(-200, 50, shape) if ct else rng.gamma(2.0, 50.0, shape) + 10).astype(np.float32)
        base += seg * (100 * (c + 1))
        if border:
            base[:border] = 0
            base[:, :border] = 0
            base[:, :, -border:] = 0
        images.append(base)
    if border:
        seg[:border] = 0
        seg[:, :border] = 0
        seg[:, :, -border:] = 0
    return images, seg


def make_dataset(raw_root: Path, dataset_id: int, name: str, shapes, spacings, channel_names, num_labels=2,
                 border=0, ct=False, seed=0, regions=False) -> Path:
    folder = raw_root / f"Dataset{dataset_id:03d}_{name}"
    rng = np.random.RandomState(seed)
    for i, (shape, spacing) in enumerate(zip(shapes, spacings)):
        images, seg = make_case(rng, shape, len(channel_names), num_labels, border, ct)
        for c, image in enumerate(images):
            write_volume(folder / "imagesTr" / f"case{i:03d}_{c:04d}.nii.gz", image, spacing)
        write_volume(folder / "labelsTr" / f"case{i:03d}.nii.gz", seg, spacing, np.uint8)
    labels = {"background": 0, **{f"class{v}": v for v in range(1, num_labels + 1)}}
    meta = {"channel_names": {str(i): n for i, n in enumerate(channel_names)}, "labels": labels,
            "numTraining": len(shapes), "file_ending": ".nii.gz"}
    if regions:
        meta["labels"] = {"background": 0, "whole": list(range(1, num_labels + 1)), "core": [num_labels]}
        meta["regions_class_order"] = list(range(1, 3))
    (folder / "dataset.json").write_text(json.dumps(meta, indent=1))
    return folder


def run_nnunet(script: str, raw: Path, preprocessed: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a snippet against the real nnunetv2 in a fresh interpreter (its paths are read at import)."""
    env = dict(os.environ, nnUNet_raw=str(raw), nnUNet_preprocessed=str(preprocessed),
               nnUNet_results=str(preprocessed.parent / "results"), nnUNet_def_n_proc="1",
               OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, capture_output=True,
                            text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"nnU-Net oracle failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result
