"""Side by side: our predictor and nnU-Net's, same model, same case, same settings, on CPU.

Prints wall-time and peak-memory ratios (ours / nnU-Net) and the Dice agreement, for default
settings (all given folds, mirroring TTA) and for our fast mode against nnU-Net's default.

Usage (needs `nnunetv2` installed beside MedSeg, e.g. the test environment .venv):
    python benchmarks/predict_vs_nnunet.py                 # BraTS-sized phantom, default nnU-Net U-Net
    python benchmarks/predict_vs_nnunet.py --size small    # a quick run on a small case
    python benchmarks/predict_vs_nnunet.py --model MODEL_DIR --case C_0000.nii.gz C_0001.nii.gz ...
Each predictor runs in its own process so that peak memory (max RSS) is measured separately. Both
get the environment MedSeg sets up on import (PyTorch's allocator on transparent huge pages).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import chimerax.medseg  # noqa: F401  before torch, as in MedSeg's own entry points; children inherit its environment

HERE = Path(__file__).resolve().parent
BRATS_ARCH = {  # nnU-Net's default 3d_fullres U-Net for BraTS-like data (1 mm, 4 channels)
    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "arch_kwargs": {"n_stages": 6, "features_per_stage": [32, 64, 128, 256, 320, 320],
                    "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": [[3, 3, 3]] * 6,
                    "strides": [[1, 1, 1]] + [[2, 2, 2]] * 5, "n_conv_per_stage": [2] * 6,
                    "n_conv_per_stage_decoder": [2] * 5, "conv_bias": True,
                    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                    "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
                    "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}},
    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
}
SIZES = {"brats": ((155, 240, 240), [128, 128, 128], 6), "small": ((64, 96, 96), [64, 64, 64], 5)}


def make_model(root: Path, size: str) -> Path:
    """An nnU-Net model folder with nnU-Net's own network (seeded random weights) for a BraTS-like task."""
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    sys.path.insert(0, str(HERE.parent / "tests" / "inference"))
    from inference_helpers import _config  # the plans layout the tests use

    _, patch, stages = SIZES[size]
    arch = json.loads(json.dumps(BRATS_ARCH))
    kw = arch["arch_kwargs"]
    kw.update(n_stages=stages, features_per_stage=kw["features_per_stage"][:stages],
              kernel_sizes=kw["kernel_sizes"][:stages], strides=kw["strides"][:stages],
              n_conv_per_stage=kw["n_conv_per_stage"][:stages], n_conv_per_stage_decoder=[2] * (stages - 1))
    config = _config(patch, [1.0, 1.0, 1.0], arch)
    config["normalization_schemes"] = ["ZScoreNormalization"] * 4
    config["use_mask_for_norm"] = [True] * 4
    stats = {"max": 1, "mean": 0, "median": 0, "min": 0, "percentile_00_5": 0, "percentile_99_5": 1, "std": 1}
    plans = {"dataset_name": "Dataset998_BratsLike", "plans_name": "nnUNetPlans", "image_reader_writer": "SimpleITKIO",
             "original_median_spacing_after_transp": [1.0, 1.0, 1.0], "transpose_forward": [0, 1, 2],
             "transpose_backward": [0, 1, 2], "label_manager": "LabelManager", "experiment_planner_used": "bench",
             "original_median_shape_after_transp": list(SIZES[size][0]),
             "foreground_intensity_properties_per_channel": {str(c): stats for c in range(4)},
             "configurations": {"3d_fullres": config}}
    dataset = {"channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"},
               "labels": {"background": 0, "whole_tumor": [1, 2, 3], "tumor_core": [2, 3], "enhancing_tumor": [3]},
               "regions_class_order": [1, 2, 3], "numTraining": 1, "file_ending": ".nii.gz"}
    folder = root / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (folder / "fold_0").mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(plans))
    (folder / "dataset.json").write_text(json.dumps(dataset))
    torch.manual_seed(0)
    net = get_network_from_plans(arch["network_class_name"], kw, arch["_kw_requires_import"], 4, 3,
                                 deep_supervision=False)
    torch.save({"network_weights": net.state_dict(), "init_args": {"configuration": "3d_fullres"},
                "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (0, 1, 2)},
               folder / "fold_0" / "checkpoint_final.pth")
    return folder


def make_case(root: Path, size: str) -> list[Path]:
    """A BraTS-like phantom (chimerax.medseg.datasets.phantom) on the benchmark's grid at 1 mm."""
    from chimerax.medseg.datasets.phantom import make_phantom, save_case
    phantom = make_phantom(np.random.default_rng(0), (1.0, 1.0, 1.0), rotate=False, shape=SIZES[size][0])
    save_case(phantom, root, None, "case")
    return sorted(root.glob("case_*.nii.gz"))


def conv_flops(model_folder: Path) -> float:
    """Multiply-adds x2 of one forward pass over one patch (convolutions and transposed convolutions)."""
    import torch
    from chimerax.medseg.inference.predictor import Predictor
    predictor = Predictor.from_folder(model_folder, device="cpu", mirroring=False)
    net, patch = predictor.network(), predictor.model.configuration["patch_size"]
    total = [0.0]

    def hook(module, inputs, output):
        kernel = np.prod(module.kernel_size)
        cin = module.in_channels // module.groups
        voxels = np.prod(output.shape[2:]) if isinstance(module, torch.nn.Conv3d) else np.prod(inputs[0].shape[2:])
        total[0] += 2.0 * kernel * cin * module.out_channels * voxels

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))]
    for p in net.parameters():
        p.requires_grad_(False)
    with torch.enable_grad():  # the plain module path (inference shortcuts bypass some modules' hooks)
        net(torch.zeros(1, len(predictor.channel_names), *patch))
    for h in handles:
        h.remove()
    return total[0]


def matmul_throughput(seconds: float = 3.0) -> float:
    """FLOP/s of large float32 matrix multiplies on this CPU (the practical ceiling for convolutions)."""
    import torch
    a, b, c = torch.randn(2048, 2048), torch.randn(2048, 2048), torch.empty(2048, 2048)
    torch.mm(a, b, out=c)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b, out=c)  # into the same output: multiplies only, no allocation
        n += 1
    return n * 2 * 2048 ** 3 / (time.perf_counter() - start)


def interleaved_throughput(model_folder: Path, flops: float, passes: int = 7) -> list[float]:
    """Our forward passes over one patch with 2 s of 2048^2 matrix multiplies before and after each:
    on a shared machine whose speed drifts, each pass is compared with the mean of the ceilings
    measured on either side of it."""
    import torch
    from chimerax.medseg.inference.predictor import Predictor
    from chimerax.medseg.network.slabs import reusing_buffers
    predictor = Predictor.from_folder(model_folder, device="cpu", mirroring=False)
    net = predictor.network()
    net.load_state_dict(predictor.fold_weights[0])
    x = torch.randn(1, len(predictor.channel_names), *predictor.model.configuration["patch_size"])
    ratios = []
    with torch.inference_mode(), reusing_buffers():  # as in a prediction
        net(x)  # warm-up: oneDNN primitives and the recycled buffers
        before = matmul_throughput(2.0)
        for _ in range(passes):
            start = time.perf_counter()
            net(x)
            rate = flops / (time.perf_counter() - start)
            after = matmul_throughput(2.0)
            ratios.append(2 * rate / (before + after))
            print(f"  pass at {rate / 1e9:.0f} GFLOP/s, matrix multiplies before and after it {before / 1e9:.0f} "
                  f"and {after / 1e9:.0f} GFLOP/s: {100 * ratios[-1]:.0f} %")
            before = after
    print(json.dumps(ratios))
    return ratios


def _peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM). Not ru_maxrss: Linux carries that over
    from the parent across fork + exec, so every child would report at least the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(args) -> None:
    """Runs inside a child process: one predictor, prints JSON with time, peak memory and labels file."""
    import torch
    files = [Path(f) for f in args.case]
    start = time.perf_counter()
    if args.run == "nnunet":
        from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
        predictor = nnUNetPredictor(tile_step_size=args.step, use_mirroring=args.tta, device=torch.device("cpu"),
                                    verbose=False, allow_tqdm=False)
        predictor.initialize_from_trained_model_folder(args.model, use_folds=None, checkpoint_name="checkpoint_final.pth")
        image, props = SimpleITKIO().read_images([str(f) for f in files])
        labels = predictor.predict_single_npy_array(image, props, None, None, False)
        timings = {}
    else:
        from chimerax.medseg.images import read_case
        from chimerax.medseg.inference.predictor import Predictor
        predictor = Predictor.from_folder(args.model, device="cpu", fast=args.fast,
                                          mirroring=None if args.fast else args.tta,
                                          step=None if args.fast else args.step)
        prediction = predictor.predict(read_case(files))
        labels, timings = prediction.labels, prediction.timings
    wall = time.perf_counter() - start
    np.save(args.labels_out, labels)
    peak_mb = _peak_rss_mb()
    # the ceiling, measured right after the run in the same process: this shared machine's speed drifts
    ceiling = matmul_throughput() if args.run == "ours" else None
    print(json.dumps({"wall_s": wall, "peak_mb": peak_mb, "timings": timings, "matmul_flops": ceiling}))


def _child(run: str, model: Path, case, out: Path, tta: bool, fast: bool = False, step: float = 0.5) -> dict:
    cmd = [sys.executable, __file__, "--run", run, "--model", str(model), "--case", *map(str, case),
           "--labels-out", str(out), "--step", str(step)] + (["--tta"] if tta else []) + (["--fast"] if fast else [])
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{run} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def dice_per_label(a: np.ndarray, b: np.ndarray) -> dict[int, float]:
    labels = sorted((set(np.unique(a)) | set(np.unique(b))) - {0})
    return {int(l): float(2 * ((a == l) & (b == l)).sum() / max((a == l).sum() + (b == l).sum(), 1)) for l in labels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="brats")
    parser.add_argument("--model", help="an nnU-Net model folder (default: nnU-Net's BraTS-like U-Net, random weights)")
    parser.add_argument("--case", nargs="+", help="channel files of one case (default: a BraTS-like phantom)")
    parser.add_argument("--no-tta-only", action="store_true", help="compare without mirroring only (quicker)")
    parser.add_argument("--throughput-only", action="store_true",
                        help="only our forward passes against matrix multiplies, interleaved")
    parser.add_argument("--run", choices=("ours", "nnunet", "throughput"), help=argparse.SUPPRESS)
    parser.add_argument("--flops", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--labels-out", help=argparse.SUPPRESS)
    parser.add_argument("--tta", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fast", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--step", type=float, default=0.5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run == "throughput":
        return interleaved_throughput(Path(args.model), args.flops)
    if args.run:
        return run_child(args)

    work = Path(tempfile.mkdtemp(prefix="medseg-bench-"))
    model = Path(args.model) if args.model else make_model(work, args.size)
    case = [Path(c) for c in args.case] if args.case else make_case(work, args.size)
    print(f"model: {model}\ncase: {', '.join(map(str, case))}\nthreads: {os.cpu_count()} CPUs")
    flops = conv_flops(model)
    print(f"one forward pass: {flops / 1e12:.3f} TFLOP")
    print("\n[forward throughput, interleaved with the ceiling]")
    # in a fresh process: this one has just run a full-size pass with gradients to count FLOPs
    cmd = [sys.executable, __file__, "--run", "throughput", "--model", str(model), "--flops", str(flops)]
    lines = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.rstrip().splitlines()
    print("\n".join(lines[:-1]))
    ratios = json.loads(lines[-1])
    print(f"  median {100 * float(np.median(ratios)):.0f} % of the matrix-multiply throughput")
    if args.throughput_only:
        return
    settings = [("no TTA", False)] + ([] if args.no_tta_only else [("TTA", True)])
    for name, tta in settings:
        theirs = _child("nnunet", model, case, work / "nn.npy", tta)
        ours = _child("ours", model, case, work / "ours.npy", tta)
        a, b = np.load(work / "ours.npy"), np.load(work / "nn.npy")
        passes, peak = _forward_passes(model, case, tta), ours["matmul_flops"]
        print(f"\n[{name}] nnU-Net {theirs['wall_s']:.1f} s, {theirs['peak_mb']:.0f} MB | ours {ours['wall_s']:.1f} s, "
              f"{ours['peak_mb']:.0f} MB | time ratio {ours['wall_s'] / theirs['wall_s']:.2f}, "
              f"memory ratio {ours['peak_mb'] / theirs['peak_mb']:.2f}")
        print(f"  our timings: {json.dumps({k: round(v, 2) for k, v in ours['timings'].items()})}")
        for what in ("forward", "network"):  # the passes alone; the whole sliding-window stage
            rate = passes * flops / ours["timings"][what]
            print(f"  {what}: {passes} passes at {rate / 1e9:.0f} GFLOP/s = {100 * rate / peak:.0f} % of the "
                  f"{peak / 1e9:.0f} GFLOP/s that 2048^2 matrix multiplies reached right after, in the same process")
        print(f"  Dice ours vs nnU-Net per label: {dice_per_label(a, b)}")
    fast = _child("ours", model, case, work / "fast.npy", False, fast=True)
    agreement = (f"; Dice vs our full mode: {dice_per_label(np.load(work / 'fast.npy'), a)}" if args.model else
                 " (random weights: see fast_mode_dice.py for what fast mode costs in Dice)")
    print(f"\n[fast mode] ours {fast['wall_s']:.1f} s: {theirs['wall_s'] / fast['wall_s']:.1f}x faster than "
          f"nnU-Net's last run above ({settings[-1][0]}, all folds){agreement}")


def _forward_passes(model: Path, case, tta: bool) -> int:
    """How many network evaluations one prediction takes (tiles x mirrorings x folds)."""
    from chimerax.medseg.images import read_case
    from chimerax.medseg.inference.sliding_window import SlidingWindow
    from chimerax.medseg.inference.predictor import Predictor
    from chimerax.medseg.preprocessing.pipeline import preprocess
    predictor = Predictor.from_folder(model, device="cpu", mirroring=tta)
    image = read_case(case)
    data, _, _ = preprocess(image.array, image.spacing, predictor.model.plans, predictor.model.configuration)
    window = SlidingWindow(None, predictor.model.configuration["patch_size"], 1, predictor.step,
                           predictor.mirror_axes if tta else ())
    return window.num_forward_passes(data.shape[1:]) * len(predictor.fold_weights)


if __name__ == "__main__":
    main()
