"""Side by side: an ensemble of two configurations, MedSeg's `medseg predict -m A -m B` against nnU-Net's
`nnUNetv2_predict_from_modelfolder --save_probabilities` per member followed by `nnUNetv2_ensemble`.

Same case, same weights (the nnU-Net-built fixtures of Dataset901 in tests/data/nnunet: 3d_fullres and
2d), no mirroring, one fold. The case is the fixture's `typical` case resampled to a finer grid
(`--scale S`: S times the voxels along each axis, 2/S mm), so the networks see the same 2 mm data while
the probabilities on the input grid, which ensembling averages, grow with S^3.

Each command runs in its own process; peak memory is the largest resident size among a command's
process tree (ru_maxrss of its waited-for descendants, measured from a small wrapper), nnU-Net's peak the
largest of its three commands, its time their sum. Prints times, peaks, the bytes nnU-Net writes
between its steps, their ratios and the labels' per-class Dice. Nothing here asserts a time.

Usage (the test environment .venv has nnunetv2):
    OMP_NUM_THREADS=1 python benchmarks/ensemble_vs_nnunet.py [--scale 4] [--ours-only]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy.ndimage import zoom

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "data" / "nnunet"
MODELS = [FIXTURES / "3d_fullres", FIXTURES / "2d"]
BIN = Path(sys.executable).parent
# Runs a command and prints the peak resident memory of its process tree (kB): the wrapper itself is small,
# so the value Linux carries over from parent to child does not hide the command's own.
WRAPPER = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)")


def make_case(folder: Path, scale: int) -> list[Path]:
    """The fixture case on a grid ``scale`` times finer (linear interpolation), same extent and axes."""
    folder.mkdir(parents=True)
    paths = []
    for c in range(2):
        source = nib.load(str(FIXTURES / "cases" / f"typical_{c:04d}.nii.gz"))
        data = zoom(np.asarray(source.dataobj, dtype=np.float32), scale, order=1)
        affine = source.affine.copy()
        affine[:3, :3] /= scale
        paths.append(folder / f"typical_{c:04d}.nii.gz")
        nib.save(nib.Nifti1Image(data, affine), str(paths[-1]))
    return paths


def measure(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak MB) of one command."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{result.stderr[-3000:]}")
    return wall, int(result.stderr.strip().splitlines()[-1]) / 1024


def dice_per_label(a: np.ndarray, b: np.ndarray) -> dict[int, float]:
    labels = sorted((set(np.unique(a)) | set(np.unique(b))) - {0})
    return {int(v): float(2 * ((a == v) & (b == v)).sum() / max((a == v).sum() + (b == v).sum(), 1)) for v in labels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=4, help="voxels per fixture voxel along each axis (default 4)")
    parser.add_argument("--ours-only", action="store_true", help="only MedSeg (the ensemble and each member alone)")
    args = parser.parse_args()
    os.environ.setdefault("nnUNet_raw", tempfile.gettempdir())  # nnU-Net warns without them; none is used
    os.environ.setdefault("nnUNet_preprocessed", tempfile.gettempdir())
    os.environ.setdefault("nnUNet_results", tempfile.gettempdir())
    with tempfile.TemporaryDirectory(prefix="medseg-ensemble-bench-") as tmp:
        root = Path(tmp)
        case = make_case(root / "in", args.scale)
        shape = nib.load(str(case[0])).shape
        print(f"case {shape[::-1]} (z, y, x) at {2 / args.scale:.2f} mm; load average {os.getloadavg()[0]:.1f}")
        ours_out = root / "ours" / "typical.nii.gz"
        ours = measure([str(BIN / "medseg"), "predict", "--quiet", "-m", str(MODELS[0]), "-m", str(MODELS[1]),
                        "-i", *map(str, case), "-o", str(ours_out), "--no-mirroring", "--device", "cpu"])
        singles = [measure([str(BIN / "medseg"), "predict", "--quiet", "-m", str(m), "-i", *map(str, case),
                            "-o", str(root / f"single_{m.name}.nii.gz"), "--no-mirroring", "--device", "cpu"])
                   for m in MODELS]
        one_member = 3 * int(np.prod(shape)) * 4 / 2**20  # float32 probabilities of one member on the input grid
        print(f"MedSeg, each member alone: {' / '.join(f'{t:.1f} s, {p:.0f} MB' for t, p in singles)}; the ensemble "
              f"adds {ours[1] - max(p for _, p in singles):.0f} MB to the larger (one member's probabilities: "
              f"{one_member:.0f} MB)")
        if args.ours_only:
            return
        theirs = []
        for model in MODELS:
            theirs.append(measure([str(BIN / "nnUNetv2_predict_from_modelfolder"), "-i", str(root / "in"),
                                   "-o", str(root / model.name), "-m", str(model), "-f", "0", "--save_probabilities",
                                   "--disable_tta", "-device", "cpu", "-npp", "1", "-nps", "1",
                                   "--disable_progress_bar"]))
        theirs.append(measure([str(BIN / "nnUNetv2_ensemble"), "-i", *(str(root / m.name) for m in MODELS),
                               "-o", str(root / "ensemble"), "-np", "1"]))
        between = sum(f.stat().st_size for m in MODELS for f in (root / m.name).glob("typical.*") if f.suffix != ".gz")
        wall, peak = sum(t for t, _ in theirs), max(p for _, p in theirs)
        a = np.asarray(nib.load(str(ours_out)).dataobj)
        b = np.asarray(nib.load(str(root / "ensemble" / "typical.nii.gz")).dataobj)
        print(f"nnU-Net: {wall:.1f} s ({' + '.join(f'{t:.1f}' for t, _ in theirs)}), peak {peak:.0f} MB "
              f"({' / '.join(f'{p:.0f}' for _, p in theirs)}), {between / 1e6:.1f} MB of probabilities written "
              "between its steps")
        print(f"MedSeg:  {ours[0]:.1f} s, peak {ours[1]:.0f} MB, nothing written but the labels")
        print(json.dumps({"time_ratio": round(ours[0] / wall, 3), "memory_ratio": round(ours[1] / peak, 3),
                          "dice": dice_per_label(a, b), "load_average": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
