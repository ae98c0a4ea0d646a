"""Make the data docs/workflow.md starts from: a small lab's DICOM studies and a "pretrained" model.

    python scripts/make_workflow_study.py FOLDER [--cases 10] [--seed 0]

FOLDER gets
  studies/LUNG1-001 ... : one synthetic chest CT each (DICOM, 48 x 48 pixels x 24 slices, HU), with
                          three RT-STRUCTs (structure sets reader1, reader2, reader3), each holding the
                          ROI "GTV-1" as that reader drew the tumour (slightly different outlines);
                          in every third case the tumour touches the chest wall;
  test_studies/LUNG1-011 ...: held-out studies of the same kind;
  pretrained/Dataset901_PublicLung/nnUNetTrainer__nnUNetPlans__3d_fullres/
                        : an nnU-Net v2 model folder standing in for a downloaded public model. It is
                          trained here by `medseg train` (2 epochs, a tiny network) on a second
                          synthetic dataset whose tumours all lie free in the lung;
  pretrained_training/  : what that training used (raw, preprocessed, results), for reference.

Everything is synthetic and written by MedSeg's own writers (CT slices with pydicom through the
test factory, RT-STRUCTs with chimerax.medseg.images.rtstruct_write); nothing is downloaded.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "images"))
from dicom_helpers import write_series  # noqa: E402  (the DICOM writer the tests use)

from chimerax.medseg.cli import main as medseg  # noqa: E402
from chimerax.medseg.datasets.layout import create_dataset_folder, write_dataset_json  # noqa: E402
from chimerax.medseg.datasets.phantom import affine_for, ellipsoid, physical_grid, save_nifti  # noqa: E402
from chimerax.medseg.images.dicom import read_dicom_volume  # noqa: E402
from chimerax.medseg.images.rtstruct_write import write_rtstruct  # noqa: E402

SHAPE = (24, 48, 48)              # slices, rows, columns
SPACING = (3.0, 2.0, 2.0)         # mm: slice step, row and column spacing
PUBLIC_ID, PUBLIC_NAME = 901, "PublicLung"
MODEL_NAME = "nnUNetTrainer__nnUNetPlans__3d_fullres"


@dataclass
class ChestCT:
    """One synthetic chest CT in HU (slices, rows, columns) and the tumour as the three readers drew it."""

    hu: np.ndarray
    readers: dict[str, np.ndarray]


def _lungs(grid) -> tuple[np.ndarray, np.ndarray, list[tuple[float, ...]]]:
    """Body and lung masks of a chest on ``grid`` (mm); the lung centres and radii (z, y, x)."""
    z_mid, y_mid, x_mid = [(n - 1) * s / 2 for n, s in zip(SHAPE, SPACING)]
    body = ellipsoid(grid, (z_mid, y_mid, x_mid), (200.0, 40.0, 46.0))  # long along z: a chest slab
    lungs = [(z_mid, y_mid - 2, x_mid - 21), (z_mid, y_mid - 2, x_mid + 21)]
    radii = (30.0, 28.0, 16.0)
    lung = ellipsoid(grid, lungs[0], radii) | ellipsoid(grid, lungs[1], radii)
    return body, lung, [lungs[0] + radii, lungs[1] + radii]


def chest_ct(rng: np.random.Generator, at_wall: bool, tumour_hu: float = 160.0) -> ChestCT:
    """A chest slab with two lungs and a round tumour in one of them (touching the chest wall if ``at_wall``)."""
    grid = physical_grid(SHAPE, SPACING)
    body, lung, lungs = _lungs(grid)
    cz, cy, cx, rz, ry, rx = lungs[rng.integers(2)]
    radius = rng.uniform(9.0, 14.0)
    side = np.sign(cx - (SHAPE[2] - 1) * SPACING[2] / 2)
    # free in the lung: near its centre; at the wall: the centre sits on the lung's outer edge
    dx = side * (rx - 1.0) if at_wall else rng.uniform(-3, 3)
    centre = (cz + rng.uniform(-8, 8), cy + rng.uniform(-6, 6), cx + dx)
    tumour = ellipsoid(grid, centre, (radius,) * 3)
    hu = np.where(body, 20.0, -1000.0)
    hu = np.where(lung, -820.0, hu)
    hu = np.where(tumour, tumour_hu, hu) + rng.normal(0, 20.0, SHAPE)
    # readers: the first outlines the tumour itself, the second a little generously, the third tighter and shifted
    outlines = {"reader1": (centre, radius), "reader2": (centre, radius + 1.5),
                "reader3": ((centre[0], centre[1] + 1.5, centre[2] - 1.0), radius - 1.0)}
    readers = {name: ellipsoid(grid, c, (r,) * 3) & body for name, (c, r) in outlines.items()}
    return ChestCT(np.clip(hu, -1024, 3000).astype(np.int16), readers)


def write_study(folder: Path, case: ChestCT) -> None:
    """A study folder as a hospital export might hold it: CT/ slices and RTSTRUCT/ one file per reader."""
    write_series(folder / "CT", case.hu, pixel_spacing=SPACING[1:], slice_step=SPACING[0], origin=(-48.0, -48.0, 0.0),
                 modality="CT", series_number=2, description="CT chest", intercept=0.0)
    _, source = read_dicom_volume(folder / "CT")
    for reader, mask in case.readers.items():
        (folder / "RTSTRUCT").mkdir(exist_ok=True)
        write_rtstruct(mask.astype(np.uint8), source, {1: "GTV-1"}, folder / "RTSTRUCT" / f"{reader}.dcm",
                       colors={1: (255, 0, 0)}, label=reader)


def write_public_dataset(raw: Path, cases: int, rng: np.random.Generator) -> Path:
    """The pretrained model's own training data: NIfTI CTs with the tumour (reader 1's outline) as label 1."""
    folder = create_dataset_folder(raw, PUBLIC_ID, PUBLIC_NAME)
    affine = affine_for(SPACING, (-48.0, -48.0, 0.0))
    for i in range(cases):
        case = chest_ct(rng, at_wall=False, tumour_hu=rng.uniform(140, 200))
        save_nifti(case.hu, affine, folder / "imagesTr" / f"public_{i:03d}_0000.nii.gz")
        save_nifti(case.readers["reader1"].astype(np.uint8), affine, folder / "labelsTr" / f"public_{i:03d}.nii.gz")
    write_dataset_json(folder, {"0": "CT"}, {"background": 0, "tumour": 1}, cases)
    return folder


def train_pretrained(work: Path, target: Path, cases: int, rng: np.random.Generator) -> Path:
    """Train the stand-in public model with `medseg train` (tiny: 2 epochs) and copy its model folder out."""
    for name in ("raw", "preprocessed", "results"):
        os.environ[f"nnUNet_{name}"] = str(work / name)
    write_public_dataset(work / "raw", cases, rng)
    steps = [["plan", str(PUBLIC_ID), "-c", "3d_fullres", "--base-features", "4", "--max-features", "16",
              "-np", "1", "--quiet"],
             ["train", str(PUBLIC_ID), "3d_fullres", "--fold", "all", "--epochs", "2", "--iterations", "50",
              "--val-iterations", "2", "--workers", "0", "--device", "cpu", "--no-validation"]]
    log = work / "medseg_log.txt"
    for argv in steps:
        print(f"medseg {' '.join(argv)}  (output in {log})", flush=True)
        with open(log, "a") as out, contextlib.redirect_stdout(out):
            code = medseg(argv)
        if code != 0:
            raise SystemExit(f"medseg {' '.join(argv)} failed; see {log}")
    model = work / "results" / f"Dataset{PUBLIC_ID}_{PUBLIC_NAME}" / MODEL_NAME
    shutil.copytree(model, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="where to write studies/ and pretrained/ (must not exist)")
    parser.add_argument("--cases", type=int, default=10, help="DICOM studies to train on (default 10)")
    parser.add_argument("--test-cases", type=int, default=4, help="held-out DICOM studies (default 4)")
    parser.add_argument("--public-cases", type=int, default=6, help="cases of the pretrained model's dataset")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.folder.exists():
        parser.error(f"{args.folder} exists; give a new folder")
    rng = np.random.default_rng(args.seed)
    for i in range(args.cases + args.test_cases):
        kind = "studies" if i < args.cases else "test_studies"
        write_study(args.folder / kind / f"LUNG1-{i + 1:03d}", chest_ct(rng, at_wall=i % 3 == 2))
    model = train_pretrained(args.folder / "pretrained_training",
                             args.folder / "pretrained" / f"Dataset{PUBLIC_ID}_{PUBLIC_NAME}" / MODEL_NAME,
                             args.public_cases, rng)
    print(f"Wrote {args.cases} DICOM studies to {args.folder / 'studies'}, {args.test_cases} to "
          f"{args.folder / 'test_studies'} and the pretrained model {model}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
