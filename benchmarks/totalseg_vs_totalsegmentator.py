#!/usr/bin/env python3
"""`totalseg_total` (five parts merged) against TotalSegmentator 2.18 itself, same CT, same weights, one run.

Uses the random-weight part models of tests/data/totalseg/ (scripts/make_totalseg_fixtures.py) on one of
its cases (default the RAS-stored CT; tiny networks, so the figures are mostly start-up and overheads,
not network time). Each side runs in its own process: wall time (start-up included) and peak memory
(the largest resident set among that side's processes, from getrusage), then voxel agreement. Prints
ratios; asserts nothing.

    .venv/bin/python benchmarks/totalseg_vs_totalsegmentator.py [--case ct_oblique] [--roi-subset liver heart]
    .venv/bin/python benchmarks/totalseg_vs_totalsegmentator.py --case ct_tall --tile 2 2 3 [--force-split]

--tile X Y Z repeats the case's voxels that many times along each axis (a larger image on the same grid
spacing, to see memory grow); --force-split runs both sides in TotalSegmentator's three slabs along z.
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

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "totalseg"
OURS = """
import sys
from chimerax.medseg.cli import main
sys.exit(main(["predict", "--quiet", "--device", "cpu", "-m", sys.argv[1], "-i", sys.argv[2], "-o", sys.argv[3],
               *(["--roi-subset", *sys.argv[4].split(",")] if sys.argv[4] else []),
               *(["--force-split"] if sys.argv[6] == "1" else [])]))
"""
THEIRS = """
import json, os, runpy, shutil, sys, tempfile
from pathlib import Path
fixtures = runpy.run_path(sys.argv[5])
fixtures["_stub_timm"]()
home = tempfile.mkdtemp()
shutil.copytree(sys.argv[1], Path(home) / "nnunet" / "results")
(Path(home) / "config.json").write_text(json.dumps({"totalseg_id": "bench", "send_usage_stats": False,
                                                    "prediction_counter": 0, "statistics_disclaimer_shown": True}))
os.environ["TOTALSEG_HOME_DIR"] = home
from totalsegmentator.python_api import totalsegmentator
totalsegmentator(sys.argv[2], sys.argv[3], ml=True, device="cpu", quiet=True, nr_thr_resamp=1, nr_thr_saving=1,
                 roi_subset=sys.argv[4].split(",") if sys.argv[4] else None, force_split=sys.argv[6] == "1")
"""


WRAPPER = """
import resource, subprocess, sys
subprocess.run([sys.executable, "-c", *sys.argv[1:]], check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _run(code: str, *args: str) -> tuple[float, float]:
    """Wall seconds, and the peak resident MB of the largest process of that side (each side measured alone)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", WRAPPER, code, *args], check=True, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "2"})
    return time.perf_counter() - start, int(done.stdout.split()[-1]) / 1024


def _tiled(case: Path, tile: list[int], folder: Path) -> Path:
    """The case, or its voxels repeated ``tile`` times along x, y, z (same spacing and orientation)."""
    if tile == [1, 1, 1]:
        return case
    image = nib.load(case)
    tiled = nib.Nifti1Image(np.tile(np.asanyarray(image.dataobj), tile), image.affine)
    tiled.set_data_dtype(image.get_data_dtype())
    nib.save(tiled, folder / "case.nii.gz")
    return folder / "case.nii.gz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="ct", choices=["ct", "ct_lps", "ct_oblique", "ct_tall"])
    parser.add_argument("--roi-subset", nargs="*", default=[])
    parser.add_argument("--tile", nargs=3, type=int, default=[1, 1, 1], metavar=("X", "Y", "Z"))
    parser.add_argument("--force-split", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        case = _tiled(DATA / "cases" / f"{args.case}.nii.gz", args.tile, Path(tmp))
        roi, split = ",".join(args.roi_subset), "1" if args.force_split else "0"
        weights = str(DATA / "weights")
        ours_out, theirs_out = Path(tmp) / "ours.nii.gz", Path(tmp) / "theirs.nii.gz"
        theirs_s, theirs_mb = _run(THEIRS, weights, str(case), str(theirs_out), roi,
                                   str(ROOT / "scripts" / "make_totalseg_fixtures.py"), split)
        ours_s, ours_mb = _run(OURS, weights, str(case), str(ours_out), roi, "", split)
        ours = np.asanyarray(nib.load(ours_out).dataobj)
        theirs = np.asanyarray(nib.load(theirs_out).dataobj)
    shape = "x".join(map(str, ours.shape))
    print(json.dumps({"case": args.case, "shape": shape, "roi_subset": args.roi_subset,
                      "force_split": args.force_split,
                      "totalsegmentator_s": round(theirs_s, 1), "medseg_s": round(ours_s, 1),
                      "time_ratio": round(ours_s / theirs_s, 2), "totalsegmentator_peak_mb": round(theirs_mb),
                      "medseg_peak_mb": round(ours_mb), "memory_ratio": round(ours_mb / theirs_mb, 2),
                      "voxels_equal": float((ours == theirs).mean()),
                      "labels": int(len(np.unique(theirs))), "load_average": os.getloadavg()[0]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
