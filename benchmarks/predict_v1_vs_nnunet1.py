"""Side by side on CPU: MedSeg's predictor and nnunet 1.7.1's, same v1 model, same case, same settings.

The model has the BraTS 2020 trainer's architecture (nnUNetTrainerV2BraTSRegions_DA4_BN: Generic_UNet with
batch norm, sigmoid regions WT/TC/ET), built and saved by v1's own trainer with random weights; the case
is a BraTS-like 4-channel phantom. Each predictor runs in its own process; the peak memory is the
largest sum of resident memory over that process and its children (v1 preprocesses and exports in
worker processes), sampled every 50 ms. Prints wall time, peak memory, their ratios (ours / v1) and the
per-label Dice between the two label maps.

Usage (needs .venv-nnunet1 from scripts/setup_nnunet_v1_env.sh):
    python benchmarks/predict_v1_vs_nnunet1.py                  # BraTS size: 155 x 240 x 240, patch 128^3
    python benchmarks/predict_v1_vs_nnunet1.py --size small     # 64 x 96 x 96, patch 64^3: a few minutes
    python benchmarks/predict_v1_vs_nnunet1.py --tta            # with mirroring (8 passes per tile)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TEMPLATE = ROOT / "tests" / "data" / "nnunet_v1" / "Task901_V1BraTS.zip"
SIZES = {"brats": ((155, 240, 240), 128, 6), "small": ((64, 96, 96), 64, 5)}  # shape, patch edge, stages


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
    return kids


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MB (cheap: only that tree is read)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        todo += _children(p)
    return total / 1024


def run_measured(cmd: list[str]) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak tree RSS MB, stdout) of a command. CPU seconds (user + system,
    the process and the workers it waited for) are what the predictor itself spent: on a shared machine
    its wall time also counts the time other jobs held the cores."""
    start = time.perf_counter()
    out_file, err_file = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(cmd, stdout=out_file, stderr=err_file, text=True)
    peak, done = [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_mb(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    out_file.seek(0)
    err_file.seek(0)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{err_file.read()[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, peak[0], out_file.read()


def make_case(work: Path, size: str) -> list[Path]:
    from chimerax.medseg.datasets.phantom import make_phantom, save_case
    phantom = make_phantom(np.random.default_rng(0), (1.0, 1.0, 1.0), rotate=False, shape=SIZES[size][0])
    save_case(phantom, work, None, "case")
    return sorted(work.glob("case_*.nii.gz"))


def make_model(work: Path, size: str, v1_python: str) -> Path:
    import zipfile
    with zipfile.ZipFile(TEMPLATE) as zf:
        template = work / "template_plans.pkl"
        template.write_bytes(zf.read(next(n for n in zf.namelist() if n.endswith("/plans.pkl"))))
    _, patch, stages = SIZES[size]
    subprocess.run([v1_python, str(HERE / "nnunet1_side.py"), "make", str(template), str(work / "model"), str(patch),
                    str(stages)], check=True, capture_output=True)
    return work / "model"


def run_ours(model: str, files: list[str], out: str, tta: bool) -> None:
    """In a child process: MedSeg's predictor, labels saved as .npy."""
    from chimerax.medseg.images import read_case
    from chimerax.medseg.inference.predictor import Predictor
    predictor = Predictor.from_folder(model, device="cpu", mirroring=tta, folds=[0])
    prediction = predictor.predict(read_case(files))
    np.save(out, prediction.labels)
    print(json.dumps({k: round(v, 1) for k, v in prediction.timings.items()}))


def dice_per_label(a: np.ndarray, b: np.ndarray) -> dict[int, float]:
    labels = sorted((set(np.unique(a)) | set(np.unique(b))) - {0})
    return {int(v): round(float(2 * ((a == v) & (b == v)).sum() / max((a == v).sum() + (b == v).sum(), 1)), 4)
            for v in labels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="brats")
    parser.add_argument("--tta", action="store_true", help="mirroring test-time augmentation (default off)")
    parser.add_argument("--v1-python", default=str(ROOT / ".venv-nnunet1" / "bin" / "python"))
    parser.add_argument("--ours", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ours:
        return run_ours(args.ours[0], args.ours[2:], args.ours[1], args.tta)
    import chimerax.medseg  # noqa: F401  the environment MedSeg sets up, inherited by our child

    work = Path(tempfile.mkdtemp(prefix="medseg-v1-bench-"))
    case = make_case(work, args.size)
    model = make_model(work, args.size, args.v1_python)
    print(f"case {SIZES[args.size][0]} x 4 channels, patch {SIZES[args.size][1]}^3, "
          f"{'with' if args.tta else 'without'} mirroring, 1 fold, {os.cpu_count()} CPUs; work {work}")
    v1_out = work / "v1.nii.gz"
    v1_cmd = [args.v1_python, str(HERE / "nnunet1_side.py"), "predict", str(model), str(v1_out), *map(str, case)]
    t_v1, cpu_v1, m_v1, _ = run_measured(v1_cmd + (["--tta"] if args.tta else []))
    print(f"nnunet 1.7.1: {t_v1:.1f} s wall, {cpu_v1:.1f} s CPU, peak {m_v1:.0f} MB")
    ours_cmd = [sys.executable, __file__, "--ours", str(model), str(work / "ours.npy"), *map(str, case)]
    t_ours, cpu_ours, m_ours, out = run_measured(ours_cmd + (["--tta"] if args.tta else []))
    print(f"MedSeg:       {t_ours:.1f} s wall, {cpu_ours:.1f} s CPU, peak {m_ours:.0f} MB; "
          f"steps {out.strip().splitlines()[-1]}")
    from chimerax.medseg.images import read_image
    v1_labels = read_image(v1_out).array[0].astype(np.int64)
    ours = np.load(work / "ours.npy").astype(np.int64)
    print(json.dumps({"time_ratio": round(t_ours / t_v1, 3), "cpu_time_ratio": round(cpu_ours / cpu_v1, 3),
                      "peak_memory_ratio": round(m_ours / m_v1, 3),
                      "dice_per_label": dice_per_label(ours, v1_labels),
                      "voxel_agreement": round(float((ours == v1_labels).mean()), 6)}))


if __name__ == "__main__":
    main()
