"""The CUDA path, checked and timed in one run (called by benchmarks/gpu_check.sh; at most ~5 minutes).

(a) parity: every parity fixture (tests/data/nnunet: models x cases, the reference runs' settings; the
    nnU-Net v1 fixtures) predicted on cuda and on the CPU: per-label Dice >= 0.99, probabilities within 0.02;
(b) speed: a BraTS-size phantom (4 x 155 x 240 x 240 at 1 mm) with nnU-Net's default 3d_fullres U-Net
    (6 stages, patch 128^3; 5 folds of seeded random weights), 5 folds x 8 mirrorings: MedSeg full,
    MedSeg adaptive, and nnunetv2's own predictor on the same GPU; plus the embedded (trained) demo model
    at the same size, full against adaptive;
(c) peak GPU memory of every run (torch.cuda.max_memory_allocated).

    python benchmarks/gpu_check.py              # on a CUDA machine
    python benchmarks/gpu_check.py --dry-run    # here: the same steps on the CPU, small, to check the script
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from chimerax.medseg.images import read_case
from chimerax.medseg.inference.predictor import Predictor, example_model_path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from predict_vs_nnunet import SIZES, make_case, make_model  # noqa: E402  (benchmarks/ is not a package)

FIXTURES = HERE.parent / "tests" / "data" / "nnunet"
V1_FIXTURES = HERE.parent / "tests" / "data" / "nnunet_v1"
FOLDS = 5


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


def worst_label_dice(a: np.ndarray, b: np.ndarray) -> float:
    values = [v for v in np.union1d(np.unique(a), np.unique(b)) if v != 0]
    return min([dice(a == v, b == v) for v in values], default=1.0)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else float("nan")


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def parity_runs() -> list[tuple[str, Path, dict, list[Path]]]:
    """(title, model, predictor settings, case files) for every parity fixture."""
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    runs = []
    for ref in manifest["references"]:
        info = manifest["models"][ref["model"]]
        settings = {"folds": info["folds"], "mirroring": ref["use_mirroring"], "step": ref["tile_step_size"]}
        for case in ref["cases"]:
            files = [FIXTURES / "cases" / f for f in manifest["cases"][case]["files"]]
            runs.append((f"{ref['model']} {ref['setting']} {case}", FIXTURES / info["dir"], settings, files))
    for task in sorted(V1_FIXTURES.glob("Task*.zip")):
        for case in sorted((V1_FIXTURES / task.stem / "cases").glob("*_0000.nii.gz")):
            name = case.name[: -len("_0000.nii.gz")]
            files = sorted((V1_FIXTURES / task.stem / "cases").glob(f"{name}_[0-9][0-9][0-9][0-9].nii.gz"))
            runs.append((f"v1 {task.stem} {name}", task, {"mirroring": True}, files))
    return runs


def check_parity(device: torch.device, limit: int | None) -> bool:
    print(f"\n(a) parity fixtures on {device} against the CPU (labels Dice >= 0.99, probabilities within 0.02)")
    ok, predictors = True, {}
    for title, model, settings, files in parity_runs()[:limit]:
        image = read_case(files)
        key = (str(model), json.dumps(settings))
        if key not in predictors:
            predictors[key] = [Predictor.from_folder(model, device=d, **settings) for d in ("cpu", str(device))]
        cpu, gpu = (p.predict(image, save_probabilities=True) for p in predictors[key])
        worst = worst_label_dice(gpu.labels, cpu.labels)
        diff = float(np.abs(gpu.probabilities - cpu.probabilities).max())
        good = worst >= 0.99 and diff <= 0.02
        ok &= good
        print(f"  {'ok  ' if good else 'FAIL'} {title:<44} worst label Dice {worst:.4f}, max |dp| {diff:.4f}")
    return ok


def five_fold_model(root: Path, size: str, folds: int) -> Path:
    """nnU-Net's default BraTS U-Net (the benchmark's make_model) with folds 1-4 of other seeded weights."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    folder = make_model(root, size)
    arch = json.loads((folder / "plans.json").read_text())["configurations"]["3d_fullres"]["architecture"]
    checkpoint = torch.load(folder / "fold_0" / "checkpoint_final.pth", weights_only=False)
    for fold in range(1, folds):
        torch.manual_seed(fold)
        net = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                     4, 3, deep_supervision=False)
        (folder / f"fold_{fold}").mkdir()
        torch.save({**checkpoint, "network_weights": net.state_dict()},
                   folder / f"fold_{fold}" / "checkpoint_final.pth")
    return folder


def timed_ours(model: Path, files: list[Path], device: torch.device, **settings) -> tuple[np.ndarray, dict]:
    predictor = Predictor.from_folder(model, device=str(device), **settings)
    image = read_case(files)
    reset_peak(device)
    start = time.perf_counter()
    prediction = predictor.predict(image)
    synchronize(device)
    seconds = time.perf_counter() - start
    passes = prediction.passes
    return prediction.labels, {"s": seconds, "peak_mb": peak_mb(device), "forward_s": prediction.timings["forward"],
                               "passes": f"{passes.run}/{passes.full}" if passes else "all"}


def timed_nnunet(model: Path, files: list[Path], device: torch.device) -> tuple[np.ndarray, dict]:
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    predictor = nnUNetPredictor(tile_step_size=0.5, use_mirroring=True, device=device, verbose=False,
                                allow_tqdm=False, perform_everything_on_device=device.type == "cuda")
    predictor.initialize_from_trained_model_folder(str(model), use_folds=None, checkpoint_name="checkpoint_final.pth")
    image, props = SimpleITKIO().read_images([str(f) for f in files])
    seconds = []
    for _ in range(2):  # the first run also pays for cuDNN's kernel choice (benchmark mode): the second counts
        reset_peak(device)
        start = time.perf_counter()
        labels = predictor.predict_single_npy_array(image, props, None, None, False)
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return np.asarray(labels), {"s": seconds[1], "first_run_s": seconds[0], "peak_mb": peak_mb(device)}


def show(name: str, stats: dict, reference: dict | None = None) -> None:
    ratio = f", {stats['s'] / reference['s']:.2f}x nnU-Net's time" if reference else ""
    extra = "".join(f", {k} {v:.1f}" if isinstance(v, float) else f", {k} {v}" for k, v in stats.items() if k != "s")
    print(f"  {name:<34} {stats['s']:7.1f} s{extra}{ratio}")


def default_network(root: Path, size: str, folds: int, device: torch.device, settings: dict,
                    with_nnunet: bool) -> None:
    model = five_fold_model(root / "model", size, folds)
    (root / "case").mkdir()
    files = make_case(root / "case", size)
    timed_ours(model, files, device, folds=["0"], mirroring=False)  # warm-up: cuDNN's kernel choice, the allocator
    full, full_stats = timed_ours(model, files, device, **settings)
    adaptive, adaptive_stats = timed_ours(model, files, device, adaptive=True, **settings)
    reference = None
    if with_nnunet:
        theirs, reference = timed_nnunet(model, files, device)
        show("nnU-Net (nnunetv2 predictor)", reference)
    show("MedSeg full ensemble", full_stats, reference)
    show("MedSeg adaptive", adaptive_stats, reference)
    print(f"  labels: adaptive vs full worst label Dice {worst_label_dice(adaptive, full):.4f}"
          + (f"; full vs nnU-Net {worst_label_dice(full, theirs):.4f}, adaptive vs nnU-Net "
             f"{worst_label_dice(adaptive, theirs):.4f}" if with_nnunet else ""))


def time_brats(device: torch.device, size: str, have_nnunet: bool, dry_run: bool) -> None:
    folds = 2 if dry_run else FOLDS
    settings = {"mirroring": False} if dry_run else {}  # a dry run only checks the steps: few passes
    print(f"\n(b, c) {size} case ({SIZES[size][0]}), nnU-Net's default U-Net, {folds} folds x "
          f"{1 if dry_run else 8} mirrorings, on {device}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if have_nnunet:  # nnU-Net builds its own default network (and times its predictor)
            default_network(root, size, folds, device, settings, not dry_run)
        else:
            print("  nnunetv2 is not installed: nnU-Net's default network and its predictor are skipped")
        demo = example_model_path()
        (root / "demo").mkdir()
        demo_files = make_case(root / "demo", size)
        full, full_stats = timed_ours(demo, demo_files, device, **settings)
        adaptive, adaptive_stats = timed_ours(demo, demo_files, device, adaptive=True, **settings)
        print(f"  embedded demo model (trained, {len(Predictor.from_folder(demo, device='cpu').fold_weights)} folds):")
        show("MedSeg full ensemble", full_stats)
        show("MedSeg adaptive", adaptive_stats)
        print(f"  labels: adaptive vs full worst label Dice {worst_label_dice(adaptive, full):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="check the script on the CPU: a few parity cases, "
                                                               "the small case, no nnU-Net timing")
    parser.add_argument("--device", default="cuda", help="device to check (default cuda)")
    args = parser.parse_args()
    device = torch.device("cpu" if args.dry_run else args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"torch {torch.__version__} sees no CUDA GPU; run with --dry-run to check the script.")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run)"
    print(f"torch {torch.__version__}, device {device}: {name}")
    started = time.perf_counter()
    ok = check_parity(device, 2 if args.dry_run else None)
    print(f"  parity took {time.perf_counter() - started:.0f} s")
    time_brats(device, "small" if args.dry_run else "brats", _importable("nnunetv2"), args.dry_run)
    print(f"\ntotal {time.perf_counter() - started:.0f} s; parity {'passed' if ok else 'FAILED'}")
    sys.exit(0 if ok else 1)


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
