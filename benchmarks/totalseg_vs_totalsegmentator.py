#!/usr/bin/env python3
"""`totalseg_total` (five parts merged) against TotalSegmentator 2.18 itself, same CT, same weights, one run.

Uses the random-weight part models of tests/data/totalseg/ (scripts/make_totalseg_fixtures.py) on one of
its cases (default the RAS-stored CT; tiny networks, so the figures are mostly start-up and overheads,
not network time). Each side runs in its own process: wall time (start-up included) and peak memory
(the largest resident set among that side's processes, from getrusage), then voxel agreement. Prints
ratios; asserts nothing.

    .venv/bin/python benchmarks/totalseg_vs_totalsegmentator.py [--case ct_oblique] [--roi-subset liver heart]
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
               *(["--roi-subset", *sys.argv[4].split(",")] if sys.argv[4] else [])]))
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
                 roi_subset=sys.argv[4].split(",") if sys.argv[4] else None)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="ct", choices=["ct", "ct_lps", "ct_oblique"])
    parser.add_argument("--roi-subset", nargs="*", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        case = DATA / "cases" / f"{args.case}.nii.gz"
        roi = ",".join(args.roi_subset)
        weights = str(DATA / "weights")
        ours_out, theirs_out = Path(tmp) / "ours.nii.gz", Path(tmp) / "theirs.nii.gz"
        theirs_s, theirs_mb = _run(THEIRS, weights, str(case), str(theirs_out), roi,
                                   str(ROOT / "scripts" / "make_totalseg_fixtures.py"))
        ours_s, ours_mb = _run(OURS, weights, str(case), str(ours_out), roi)
        ours = np.asanyarray(nib.load(ours_out).dataobj)
        theirs = np.asanyarray(nib.load(theirs_out).dataobj)
    shape = "x".join(map(str, ours.shape))
    print(json.dumps({"case": args.case, "shape": shape, "roi_subset": args.roi_subset,
                      "totalsegmentator_s": round(theirs_s, 1), "medseg_s": round(ours_s, 1),
                      "time_ratio": round(ours_s / theirs_s, 2), "totalsegmentator_peak_mb": round(theirs_mb),
                      "medseg_peak_mb": round(ours_mb), "memory_ratio": round(ours_mb / theirs_mb, 2),
                      "voxels_equal": float((ours == theirs).mean()),
                      "labels": int(len(np.unique(theirs))), "load_average": os.getloadavg()[0]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
