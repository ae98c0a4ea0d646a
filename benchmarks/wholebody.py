"""A whole-body CT through TotalSegmentator-sized models: peak memory and time, ours beside nnU-Net's predictor.

The case: a deterministic body-shaped phantom (head, neck, trunk with lungs, liver, kidneys, spine and
other blobs, two legs) written as an int16 NIfTI, by default 512 x 512 x 600 voxels at 0.8 x 0.8 x 1.5 mm.
The models (random weights, nnU-Net's own network code, seed 0), both 3d_fullres PlainConvUNets with
TotalSegmentator's class counts and spacings:
  3mm   Dataset297's task: 118 outputs (background + the 117 `total` structures), 3 mm, 5 stages, patch 112^3
  1.5mm Dataset291's task (part 1, organs): 25 outputs, 1.5 mm, 6 stages, patch 128^3
TotalSegmentator's plans.json files ship only inside its weight archives, which cannot be downloaded here,
so the plans are nnU-Net's defaults for those spacings; the stage counts are the ones whose weights match
the published archives' sizes (5 stages: 67 MB of float32 weights, the 3 mm zip is 135 MB with its
optimizer state; 6 stages: 125 MB, the part zips 234 MB).

Each predictor runs in its own process, niced, with the same settings (no mirroring, one fold, the given
step). A watchdog polls each process tree's resident memory and kills it past --cap-gb, so a peer that
cannot finish within the machine cannot take it down; that run is reported as "did not finish within X GB".

    python benchmarks/wholebody.py --model 3mm                      # full size, ours and nnU-Net
    python benchmarks/wholebody.py --model 1.5mm --slices 120       # a z-crop of the same body
    python benchmarks/wholebody.py --model 3mm --scale 2 --slices 200  # a coarser case (1.6 mm in-plane)
    python benchmarks/wholebody.py --model 1.5mm --only ours
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
MANIFEST = HERE.parent / "src" / "models_manifest.json"
MODELS = {  # name: (dataset, outputs, spacing, patch, stages)
    "3mm": ("Dataset297_TotalSegmentator_total_3mm_1559subj", 118, 3.0, 112, 5),
    "1.5mm": ("Dataset291_TotalSegmentator_part1_organs_1559subj", 25, 1.5, 128, 6),
}
# TotalSegmentator-like CT foreground statistics (HU); only their rough size matters here
CT_STATS = {"max": 3071.0, "mean": 100.0, "median": 60.0, "min": -1024.0, "percentile_00_5": -980.0,
            "percentile_99_5": 1500.0, "std": 300.0}


# ---------------------------------------------------------------- the case


def _ellipse(yy, xx, cy, cx, ry, rx):
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def phantom_slice(z_mm: float, yy: np.ndarray, xx: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """One axial slice (HU, int16) at height ``z_mm`` (0 = feet, 900 = top of the head)."""
    out = np.full(yy.shape, -1000.0, dtype=np.float32)
    if z_mm < 380:  # legs: two ellipses, thicker towards the hips
        r = 45 + 45 * z_mm / 380
        body = _ellipse(yy, xx, 0, -r - 5, r * 0.9, r) | _ellipse(yy, xx, 0, r + 5, r * 0.9, r)
        bones = _ellipse(yy, xx, 0, -r - 5, 14, 14) | _ellipse(yy, xx, 0, r + 5, 14, 14)
    elif z_mm < 760:  # trunk
        body = _ellipse(yy, xx, 0, 0, 110, 170)
        bones = _ellipse(yy, xx, 70, 0, 18, 20)  # spine
    elif z_mm < 800:  # neck
        body = _ellipse(yy, xx, 10, 0, 55, 60)
        bones = _ellipse(yy, xx, 30, 0, 14, 14)
    else:  # head
        body = _ellipse(yy, xx, 0, 0, 95, 80)
        bones = body & ~_ellipse(yy, xx, 0, 0, 88, 73)
    out[body] = -90  # fat
    if 380 <= z_mm < 760:  # trunk muscle and organs' surroundings
        out[_ellipse(yy, xx, 0, 0, 95, 150)] = 40
    if 600 <= z_mm < 740:  # lungs
        out[_ellipse(yy, xx, -5, -75, 70, 60) | _ellipse(yy, xx, -5, 75, 70, 60)] = -850
    if 520 <= z_mm < 640:  # liver, spleen
        out[_ellipse(yy, xx, -10, -70, 60, 65)] = 60
        out[_ellipse(yy, xx, 20, 95, 30, 25)] = 50
    if 470 <= z_mm < 560:  # kidneys
        out[_ellipse(yy, xx, 45, -60, 22, 18) | _ellipse(yy, xx, 45, 60, 22, 18)] = 35
    if 400 <= z_mm < 450:  # bladder
        out[_ellipse(yy, xx, -30, 0, 35, 40)] = 5
    if z_mm >= 800:  # brain
        out[_ellipse(yy, xx, 0, 0, 86, 71)] = 35
    out[bones] = 700
    out += noise
    return np.clip(out, -1024, 3071).astype(np.int16)


def make_case(path: Path, slices: int, scale: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The phantom CT: ``slices`` slices of the 600 at 1.5 mm (the middle ones: trunk first), in-plane
    512 / ``scale`` voxels at 0.8 * ``scale`` mm. Deterministic (seeded noise)."""
    import nibabel as nib
    n_xy, dxy, dz = 512 // scale, 0.8 * scale, 1.5
    first = (600 - slices) // 2
    coords = (np.arange(n_xy) - n_xy / 2 + 0.5) * dxy
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    rng = np.random.default_rng(0)
    volume = np.empty((n_xy, n_xy, slices), dtype=np.int16)  # NIfTI order (x, y, z)
    for k in range(slices):
        noise = rng.normal(scale=15, size=yy.shape).astype(np.float32)
        volume[:, :, k] = phantom_slice((first + k) * dz, yy, xx, noise).T
    affine = np.diag([dxy, dxy, dz, 1.0])
    image = nib.Nifti1Image(volume, affine)
    image.header.set_data_dtype(np.int16)
    nib.save(image, str(path))
    return (slices, n_xy, n_xy), (dz, dxy, dxy)


# ---------------------------------------------------------------- the models


def make_model(root: Path, name: str) -> Path:
    """An nnU-Net v2 model folder: TotalSegmentator's class names and count, nnU-Net's default network for
    the spacing, seeded random weights made by nnU-Net's own network code."""
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    dataset, outputs, spacing, patch, stages = MODELS[name]
    manifest = json.loads(MANIFEST.read_text())
    total = next(m for m in manifest["models"] if m["name"] == "totalseg_total_3mm")["labels"]
    labels = {k: v for k, v in total.items() if v < outputs}
    arch_kwargs = {
        "n_stages": stages, "features_per_stage": [min(32 * 2 ** i, 320) for i in range(stages)],
        "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": [[3, 3, 3]] * stages,
        "strides": [[1, 1, 1]] + [[2, 2, 2]] * (stages - 1), "n_conv_per_stage": [2] * stages,
        "n_conv_per_stage_decoder": [2] * (stages - 1), "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True}}
    arch = {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": arch_kwargs, "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}
    config = {
        "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": [patch] * 3, "median_image_size_in_voxels": [int(900 / spacing), 270, 270],
        "spacing": [spacing] * 3, "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
        "architecture": arch, "batch_dice": False}
    plans = {"dataset_name": dataset, "plans_name": "nnUNetPlans", "image_reader_writer": "NibabelIOWithReorient",
             "original_median_spacing_after_transp": [1.5, 0.8, 0.8], "transpose_forward": [0, 1, 2],
             "transpose_backward": [0, 1, 2], "label_manager": "LabelManager",
             "experiment_planner_used": "ExperimentPlanner", "original_median_shape_after_transp": [600, 512, 512],
             "foreground_intensity_properties_per_channel": {"0": CT_STATS}, "configurations": {"3d_fullres": config}}
    dataset_json = {"channel_names": {"0": "CT"}, "labels": labels, "numTraining": 1, "file_ending": ".nii.gz"}
    folder = root / dataset / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (folder / "fold_0").mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(plans, indent=1))
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=1))
    torch.manual_seed(0)
    net = get_network_from_plans(arch["network_class_name"], arch_kwargs, arch["_kw_requires_import"], 1, outputs,
                                 deep_supervision=False)
    torch.save({"network_weights": net.state_dict(), "init_args": {"configuration": "3d_fullres"},
                "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (0, 1, 2)},
               folder / "fold_0" / "checkpoint_final.pth")
    return folder


# ---------------------------------------------------------------- one predictor (child process)


def _peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM; ru_maxrss would carry the parent's over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_child(args) -> None:
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    timings: dict = {}
    if args.run == "nnunet":
        from nnunetv2.imageio.nibabel_reader_writer import NibabelIOWithReorient
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
        predictor = nnUNetPredictor(tile_step_size=args.step, use_mirroring=False, device=torch.device("cpu"),
                                    verbose=False, allow_tqdm=False)
        predictor.initialize_from_trained_model_folder(args.model_folder, use_folds=(0,),
                                                       checkpoint_name="checkpoint_final.pth")
        image, props = NibabelIOWithReorient().read_images([args.case])
        labels = predictor.predict_single_npy_array(image, props, None, None, False)
        labels = np.asarray(labels).astype(np.uint8)
    else:
        from chimerax.medseg.images import read_case
        from chimerax.medseg.inference.predictor import Predictor
        predictor = Predictor.from_folder(args.model_folder, device="cpu", mirroring=False, step=args.step, folds=[0])
        prediction = predictor.predict(read_case([args.case]))
        labels, timings = prediction.labels, prediction.timings
    wall = time.perf_counter() - start
    np.save(args.labels_out, labels)
    usage = resource.getrusage(resource.RUSAGE_SELF)  # CPU seconds: fairer than wall time on a shared machine
    print(json.dumps({"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_mb": _peak_rss_mb(),
                      "timings": timings, "shape": list(labels.shape)}))


# ---------------------------------------------------------------- the watchdog


def _tree_rss_bytes(pid: int) -> int:
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def run_capped(cmd: list[str], cap_bytes: int) -> dict:
    """Run ``cmd`` niced; kill its process group when the tree's resident memory passes ``cap_bytes``."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(["nice", "-n", "10", *cmd], stdout=out, stderr=err, start_new_session=True)
        peak, killed = 0, False
        while child.poll() is None:
            rss = _tree_rss_bytes(child.pid)
            peak = max(peak, rss)
            if rss > cap_bytes:
                os.killpg(child.pid, 9)
                killed = True
                child.wait()
                break
            time.sleep(0.1)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    result = {"sampled_peak_mb": peak / 2 ** 20, "killed": killed, "elapsed_s": time.perf_counter() - started}
    if killed:
        return result
    if child.returncode != 0 and "MemoryError" in stderr:  # refused an allocation: did not fit this machine
        return {**result, "killed": True, "reason": stderr.strip().splitlines()[-1][-300:]}
    if child.returncode != 0:
        raise SystemExit(f"{cmd[3]} failed ({child.returncode}):\n{stderr[-3000:]}")
    return {**result, **json.loads(stdout.strip().splitlines()[-1])}


# ---------------------------------------------------------------- comparison


def dice_summary(a: np.ndarray, b: np.ndarray) -> dict:
    """Voxel agreement and per-class Dice over the classes either labelling has (background excluded)."""
    k = int(max(a.max(), b.max())) + 1
    confusion = np.bincount(a.astype(np.int32).ravel() * k + b.ravel(), minlength=k * k).reshape(k, k)
    dice = {}
    for c in range(1, k):
        both, total = confusion[c, c], confusion[c, :].sum() + confusion[:, c].sum()
        if total:
            dice[c] = 2 * both / total
    values = np.array(list(dice.values()))
    weights = np.array([confusion[c, :].sum() + confusion[:, c].sum() for c in dice])
    below = {c: (round(float(d), 4), int(confusion[c, :].sum())) for c, d in dice.items() if d < 0.99}
    return {"agreement": float(np.trace(confusion) / confusion.sum()), "classes": len(dice),
            "below_0.99 (class: Dice, voxels)": below,
            "mean_dice": float(values.mean()) if len(values) else 1.0,
            "min_dice": float(values.min()) if len(values) else 1.0,
            "voxel_weighted_dice": float((values * weights).sum() / weights.sum()) if len(values) else 1.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=list(MODELS), default="3mm")
    parser.add_argument("--slices", type=int, default=600, help="slices of the 600 (a z-crop around the middle)")
    parser.add_argument("--scale", type=int, default=1, help="in-plane coarsening: 512/scale voxels at 0.8*scale mm")
    parser.add_argument("--step", type=float, default=1.0, help="tile step (same for both; 1.0 keeps runs short)")
    parser.add_argument("--only", choices=["ours", "nnunet"], default=None)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for each predictor (default: torch's; 1 compares fairly on a shared machine)")
    parser.add_argument("--cap-gb", type=float, default=10.0, help="kill a predictor past this resident memory")
    parser.add_argument("--work", type=Path, default=None, help="folder for the case and models (default: temporary)")
    parser.add_argument("--run", choices=["ours", "nnunet"], help=argparse.SUPPRESS)
    parser.add_argument("--model-folder", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--labels-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        return run_child(args)
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        root = Path(tmp)
        shape, spacing = make_case(root / "ct.nii", args.slices, args.scale)
        folder = make_model(root, args.model)
        print(f"case {shape} voxels (z, y, x) at {spacing} mm; model {args.model}: {MODELS[args.model][0]}, "
              f"{MODELS[args.model][1]} outputs; step {args.step}, no mirroring; cap {args.cap_gb} GB; "
              f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
        results = {}
        for run in [r for r in ("ours", "nnunet") if args.only in (None, r)]:
            cmd = [sys.executable, __file__, "--run", run, "--model-folder", str(folder),
                   "--case", str(root / "ct.nii"), "--labels-out", str(root / f"{run}.npy"), "--step", str(args.step)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            results[run] = run_capped(cmd, int(args.cap_gb * 2 ** 30))
            r = results[run]
            state = (f"did not finish: {r['reason']}" if r.get("reason") else
                     f"did not finish within {args.cap_gb} GB (killed after {r['elapsed_s']:.0f} s)") if r["killed"] \
                else f"{r['wall_s']:.1f} s ({r['cpu_s']:.0f} CPU s), peak {r['peak_mb']:.0f} MB " \
                     f"(sampled {r['sampled_peak_mb']:.0f} MB)"
            print(f"{run}: {state}; load average now {os.getloadavg()[0]:.1f}"
                  + (f"; timings {json.dumps({k: round(v, 1) for k, v in r['timings'].items()})}"
                     if r.get("timings") else ""), flush=True)
        if len(results) == 2 and not any(r["killed"] for r in results.values()):
            ours, peer = results["ours"], results["nnunet"]
            print(f"ratios ours/nnU-Net: time {ours['wall_s'] / peer['wall_s']:.2f} "
                  f"(CPU time {ours['cpu_s'] / peer['cpu_s']:.2f}), "
                  f"peak memory {ours['peak_mb'] / peer['peak_mb']:.2f}")
            summary = dice_summary(np.load(root / "ours.npy"), np.load(root / "nnunet.npy"))
            print("labels: " + json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in summary.items()}))
        print(json.dumps({"case": shape, "spacing": spacing, "model": args.model, "step": args.step,
                          "results": results}))


if __name__ == "__main__":
    main()
