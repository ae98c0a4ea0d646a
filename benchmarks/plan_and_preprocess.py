"""Time `medseg plan` against `nnUNetv2_plan_and_preprocess` on the same synthetic dataset; print the ratio.

Usage: python benchmarks/plan_and_preprocess.py [--cases 10] [--processes 2] [--shape 48 64 64]
Needs nnunetv2 in the same environment (the `oracle` extra). Both run fingerprint + plans +
3d_fullres preprocessing with the same number of processes; nnU-Net's integrity check is off, so is ours.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "planning"))
from planning_helpers import make_dataset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--shape", type=int, nargs=3, default=(48, 64, 64))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="medseg_bench_"))
    try:
        z, y, x = args.shape
        shapes = [(z + i % 3, y + i % 5, x + i % 4) for i in range(args.cases)]
        spacings = [(1.0 + 0.1 * (i % 3), 0.9 + 0.05 * (i % 4), 0.9 + 0.05 * (i % 4)) for i in range(args.cases)]
        make_dataset(root / "raw", 901, "Bench", shapes, spacings, ["T1", "T2"], border=4)
        bindir = Path(sys.executable).parent
        env = dict(os.environ, nnUNet_raw=str(root / "raw"), nnUNet_results=str(root / "results"))
        runs = {
            "nnU-Net": ([str(bindir / "nnUNetv2_plan_and_preprocess"), "-d", "901", "-c", "3d_fullres",
                         "-np", str(args.processes), "-npfp", str(args.processes)], root / "pre_nnunet"),
            "medseg": ([str(bindir / "medseg"), "plan", "901", "-c", "3d_fullres", "-np", str(args.processes),
                        "--no-verify", "--quiet"], root / "pre_medseg"),
        }
        times = {}
        for name, (command, pre) in runs.items():
            start = time.perf_counter()
            subprocess.run(command, env=dict(env, nnUNet_preprocessed=str(pre)), check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[name] = time.perf_counter() - start
            print(f"{name:8s} {times[name]:7.1f} s")
        print(f"ratio nnU-Net / medseg: {times['nnU-Net'] / times['medseg']:.2f}x "
              f"({args.cases} cases, 2 channels, ~{z}x{y}x{x}, {args.processes} processes)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
