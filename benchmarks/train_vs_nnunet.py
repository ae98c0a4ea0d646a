"""Train with MedSeg and with nnU-Net's own ``nnUNetTrainer`` on the same plans and data; print
iterations per second and the final full-image validation Dice of both.

Usage: python benchmarks/train_vs_nnunet.py [--data phantom|simple] [--cases 10] [--epochs 3] [--iterations 10]
       [--features 8 16 32] [--repeats N]
Needs nnunetv2 in the same environment (the `oracle` extra). nnU-Net plans and preprocesses the
synthetic dataset (default: BraTS-like phantoms from chimerax.medseg.datasets.phantom, region-based
WT/TC/ET; ``simple``: one-channel blobs); its plans (with a smaller network, for CPU) are used by
both; MedSeg preprocesses the same plans into its own format. Same fold 0 split, same epochs x
iterations, one data-augmentation worker each, CPU, and the same initial weights (MedSeg's for
``--seed`` = repeat index; nnU-Net's own data pipeline and augmentation are not seeded alike).
``--repeats`` trains both N times, so the spread shows how much of a Dice difference is chance.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "planning"))
from planning_helpers import make_dataset  # noqa: E402

NNUNET_TRAIN = """
import sys, json, time, torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
pre, epochs, iterations, val_iterations = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
start_weights = torch.load(sys.argv[5], weights_only=True)  # MedSeg's initial weights for the same seed
plans = load_json(pre + "/nnUNetPlans.json")
plans["continue_training"] = False  # nnUNetTrainer built directly expects this key

class SameStart(nnUNetTrainer):
    def initialize(self):
        super().initialize()
        self.network.load_state_dict(start_weights)

trainer = SameStart(plans, "3d_fullres", 0, load_json(pre + "/dataset.json"), device=torch.device("cpu"))
trainer.num_epochs, trainer.num_iterations_per_epoch = epochs, iterations
trainer.num_val_iterations_per_epoch = val_iterations
start = time.time()
trainer.run_training()
train_seconds = time.time() - start
trainer.perform_actual_validation(False)
log = trainer.logger.get_checkpoint()
print(json.dumps({"seconds": train_seconds, "starts": log["epoch_start_timestamps"], "ends": log["epoch_end_timestamps"],
                  "output": trainer.output_folder}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", choices=("phantom", "simple"), default="phantom")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--shape", type=int, nargs=3, default=(32, 40, 40))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--val-iterations", type=int, default=2)
    parser.add_argument("--features", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="medseg_train_bench_"))
    z, y, x = args.shape
    shapes = [(z + i % 3, y + i % 5, x + i % 4) for i in range(args.cases)]
    if args.data == "phantom":
        from chimerax.medseg.datasets.phantom import write_dataset
        raw = write_dataset(root / "raw", 902, args.cases, seed=7, name="TrainBench")
    else:
        raw = make_dataset(root / "raw", 902, "TrainBench", shapes, [(1.0, 1.0, 1.0)] * args.cases, ["T1"], seed=7)
    env = dict(os.environ, nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "pre_nnunet"),
               nnUNet_results=str(root / "results_nnunet"), nnUNet_n_proc_DA=str(args.workers),
               PYTHONWARNINGS="ignore")
    bindir = Path(sys.executable).parent
    subprocess.run([str(bindir / "nnUNetv2_plan_and_preprocess"), "-d", "902", "-c", "3d_fullres", "-np", "1",
                    "-npfp", "1"], env=env, check=True, capture_output=True)
    pre_nn = root / "pre_nnunet" / raw.name
    plans = json.loads((pre_nn / "nnUNetPlans.json").read_text())
    kw = plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]
    n = kw["n_stages"]
    kw["features_per_stage"] = (args.features + [args.features[-1]] * n)[:n]
    (pre_nn / "nnUNetPlans.json").write_text(json.dumps(plans, indent=1))
    config = plans["configurations"]["3d_fullres"]
    print(f"plans: patch {config['patch_size']}, batch {config['batch_size']}, {n} stages, "
          f"features {kw['features_per_stage']}; {args.epochs} epochs x {args.iterations} iterations")

    # MedSeg: the same plans, preprocessed by MedSeg
    from chimerax.medseg.datasets.dataset_json import load_dataset
    from chimerax.medseg.preprocessing.to_disk import preprocess_dataset
    pre_ms = root / "pre_medseg" / raw.name
    pre_ms.mkdir(parents=True)
    for name in ("nnUNetPlans.json", "dataset.json", "dataset_fingerprint.json", "splits_final.json"):
        if (pre_nn / name).is_file():
            (pre_ms / name).write_text((pre_nn / name).read_text())
    preprocess_dataset(load_dataset(raw), plans, "3d_fullres", pre_ms, num_processes=1)

    results = [_train_both(args, env, raw, root / f"run{i}", pre_nn, pre_ms, seed=i) for i in range(args.repeats)]
    for key, what in (("nn_rate", "nnU-Net it/s"), ("ms_rate", "MedSeg it/s"), ("nn_dice", "nnU-Net Dice"),
                      ("ms_dice", "MedSeg Dice")):
        values = [r[key] for r in results]
        spread = f" +- {statistics.stdev(values):.4f}" if len(values) > 1 else ""
        print(f"{what}: {' '.join(f'{v:.4f}' for v in values)} (mean {statistics.mean(values):.4f}{spread})")
    nn_rate, ms_rate = (statistics.mean(r[k] for r in results) for k in ("nn_rate", "ms_rate"))
    nn_dice, ms_dice = (statistics.mean(r[k] for r in results) for k in ("nn_dice", "ms_dice"))
    print(f"iterations/s (epoch incl. its validation iterations): nnU-Net {nn_rate:.2f}, MedSeg {ms_rate:.2f} "
          f"(ratio {ms_rate / nn_rate:.2f})")
    cpu_nn, cpu_ms = (sum(r[k] for r in results) for k in ("nn_cpu", "ms_cpu"))
    print(f"CPU seconds of the whole run (all processes; training + final validation): nnU-Net {cpu_nn:.0f}, "
          f"MedSeg {cpu_ms:.0f} (ratio {cpu_ms / cpu_nn:.2f}; load from other users on the "
          f"machine affects wall-clock rates more than CPU seconds)")
    print(f"full-image validation, mean foreground Dice: nnU-Net {nn_dice:.4f}, MedSeg {ms_dice:.4f} "
          f"(difference {ms_dice - nn_dice:+.4f})")
    print(f"work folder: {root}")


def _train_both(args, env, raw: Path, out: Path, pre_nn: Path, pre_ms: Path, seed: int) -> dict:
    env = dict(env, nnUNet_results=str(out / "results_nnunet"))
    out.mkdir(parents=True, exist_ok=True)
    start = out / "start_weights.pth"
    torch.save(_medseg_start_weights(pre_ms, raw, seed), start)
    cpu0 = _children_cpu()
    theirs = subprocess.run([sys.executable, "-c", textwrap.dedent(NNUNET_TRAIN), str(pre_nn), str(args.epochs),
                             str(args.iterations), str(args.val_iterations), str(start)], env=env,
                            capture_output=True, text=True)
    if theirs.returncode:
        sys.exit(f"nnU-Net failed:\n{theirs.stderr[-3000:]}")
    nn = json.loads(theirs.stdout.strip().splitlines()[-1])
    cpu1 = _children_cpu()
    ours = subprocess.run([sys.executable, "-m", "chimerax.medseg.cli", "train", str(raw), "3d_fullres",
                           "--preprocessed", str(pre_ms), "-o", str(out / "results_medseg"), "--device", "cpu",
                           "--epochs", str(args.epochs), "--iterations", str(args.iterations), "--seed", str(seed),
                           "--val-iterations", str(args.val_iterations), "--workers", str(args.workers)],
                          env=env, capture_output=True, text=True)
    if ours.returncode:
        sys.exit(f"MedSeg failed:\n{ours.stderr[-3000:]}")
    cpu2 = _children_cpu()
    model = out / "results_medseg" / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_0"
    records = json.loads((model / "training_log.json").read_text())["epochs"]

    def rate(durations):  # epochs after the first (warm-up: worker start, first allocations)
        later = durations[1:] or durations
        return args.iterations / (sum(later) / len(later))
    result = {"nn_rate": rate([e - s for s, e in zip(nn["starts"], nn["ends"])]),
              "ms_rate": rate([r["epoch_seconds"] for r in records]),
              "nn_dice": json.loads((Path(nn["output"]) / "validation" / "summary.json").read_text())[
                  "foreground_mean"]["Dice"],
              "ms_dice": json.loads((model / "validation" / "summary.json").read_text())["foreground_mean"]["Dice"],
              "nn_cpu": cpu1 - cpu0, "ms_cpu": cpu2 - cpu1}
    print(f"run {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()), flush=True)
    return result


def _medseg_start_weights(pre_ms: Path, raw: Path, seed: int) -> dict:
    """The network MedSeg's trainer starts from with ``--seed seed``.

    nnU-Net starts from the same weights: at a budget this small, the initial draw decides much of
    the outcome (one draw keeps every region below 0.5 for 8 epochs in either trainer)."""
    from chimerax.medseg.training.trainer import Trainer, TrainingOptions, TrainingSetup
    plans = json.loads((pre_ms / "nnUNetPlans.json").read_text())
    setup = TrainingSetup(plans=plans, configuration="3d_fullres",
                          dataset_json=json.loads((raw / "dataset.json").read_text()),
                          preprocessed_dir=pre_ms, model_dir=pre_ms / "unused", fold="0")
    return Trainer(setup, TrainingOptions(seed=seed)).initial_network().state_dict()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
