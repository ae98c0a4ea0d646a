"""Adaptive ensembling against the full ensemble (every fold x every mirroring), and fast mode.

For each model and unseen case: forward passes and wall time of full, adaptive and fast, the
per-class Dice of adaptive (and of fast) against full, and the worst case. The embedded demo model
(5 folds) runs on new BraTS-like phantoms (seeds the demo model never saw), at the phantoms' own
size and at BraTS's 155 x 240 x 240 at 1 mm; the nnU-Net-trained fixture models (one fold each:
mirroring only) run on their fixture cases. One process, the predictors built once, the runs of
each case interleaved (full, adaptive, fast) so that load on the machine touches all alike.

    .venv/bin/python benchmarks/adaptive.py --cases 10 --size native
    .venv/bin/python benchmarks/adaptive.py --cases 3 --size brats --models demo
    .venv/bin/python benchmarks/adaptive.py --models fixtures v1 ct
    .venv/bin/python benchmarks/adaptive.py --models realct

realct: a 3-fold model trained on real CT (scripts/make_real_ct_model.py, about 40 min of CPU; run here when
its folder is missing) on the real CT series none of its folds saw, with the Dice of each mode against the
series' (TotalSegmentator-made) labels as well.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from chimerax.medseg.datasets.phantom import make_phantom, save_case
from chimerax.medseg.images import read_case
from chimerax.medseg.images.dicom import read_dicom_volume
from chimerax.medseg.inference.options import ADAPTIVE_THRESHOLD
from chimerax.medseg.inference.predictor import Predictor, example_model_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from make_real_ct_model import MODEL_NAME, merged_labels  # noqa: E402  (its label scheme, one copy)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "data" / "nnunet"
V1_FIXTURES = REPO / "tests" / "data" / "nnunet_v1"
# a real CT series (20 slices of 512 x 512; scripts/fetch_dicom_test_data.py fetches it)
REAL_CT = REPO / "tests" / "data" / "dicom" / "totalsegmentator" / "example_ct_dicom"
# its labels (TotalSegmentator's, on the dcm2niix grid medseg reads the series on), fetched with it
REAL_CT_LABELS = REAL_CT.parent / "example_seg_dicom.nii.gz"
# the model trained on real CT, where scripts/make_real_ct_model.py leaves it
REAL_CT_MODEL = REPO / "out" / "realct_training" / "results" / "Dataset951_RealCT" / MODEL_NAME
BRATS = (155, 240, 240)
GROUPS = ("demo", "fixtures", "mosaic", "v1", "v1-brats", "ct", "realct")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


def class_dice(labels: np.ndarray, reference: np.ndarray, members: dict[int, tuple[int, ...]]) -> dict[int, float]:
    return {v: dice(np.isin(labels, m), np.isin(reference, m)) for v, m in members.items()}


def phantom_cases(root: Path, count: int, size: str, first_seed: int = 1000) -> list[tuple[str, list[Path]]]:
    cases = []
    for i in range(count):
        seed = first_seed + i  # the demo model was trained and tested on seeds 0 (its 50 phantoms)
        rng = np.random.default_rng(seed)
        phantom = make_phantom(rng, (1.0, 1.0, 1.0), shape=BRATS) if size == "brats" else make_phantom(rng)
        folder = root / f"phantom_{seed}"
        folder.mkdir(parents=True)
        save_case(phantom, folder, None, "case")
        cases.append((f"phantom {seed}", sorted(folder.glob("case_*.nii.gz"))))
    return cases


def fixture_cases(model: Path) -> list[tuple[str, list[Path]]]:
    folder = FIXTURES / "cases"
    names = sorted({p.name.rsplit("_", 1)[0] for p in folder.glob("*_0000.nii.gz")})
    channels = len(Predictor.from_folder(model, device="cpu").channel_names)
    return [(n, [folder / f"{n}_{c:04d}.nii.gz" for c in range(channels)]) for n in names]


def mosaic_case(root: Path) -> list[tuple[str, list[Path]]]:
    """The 2 mm fixture cases (typical, cropped, small and typical mirrored) side by side in one 2 x 2 image:
    a larger field with small structures, for models trained on cases of one or two tiles."""
    names = ("typical", "cropped", "small", "typical")
    files = []
    for channel in range(2):
        arrays = [np.asarray(nib.load(str(FIXTURES / "cases" / f"{n}_{channel:04d}.nii.gz")).dataobj) for n in names]
        arrays[3] = arrays[3][::-1]  # the fourth head mirrored, so no two are alike
        shape = np.max([a.shape for a in arrays], axis=0)
        padded = [np.pad(a, [(0, int(t) - n) for n, t in zip(a.shape, shape)]) for a in arrays]
        image = np.concatenate([np.concatenate(padded[:2], 0), np.concatenate(padded[2:], 0)], 1)
        path = root / f"mosaic_{channel:04d}.nii.gz"
        nib.save(nib.Nifti1Image(image.astype(np.int16), np.diag([2.0, 2.0, 2.0, 1.0])), str(path))
        files.append(path)
    return [("mosaic of 4", files)]


def v1_cases(task: str) -> list[tuple[str, list[Path]]]:
    folder = V1_FIXTURES / task / "cases"
    names = sorted(p.name[: -len("_0000.nii.gz")] for p in folder.glob("*_0000.nii.gz"))
    return [(n, sorted(folder.glob(f"{n}_[0-9][0-9][0-9][0-9].nii.gz"))) for n in names]


def timed(predictor: Predictor, image) -> tuple[object, float]:
    start = time.perf_counter()
    prediction = predictor.predict(image)
    return prediction, time.perf_counter() - start


def nnunet_labels(model: Path, files: list[Path], out: Path) -> tuple[np.ndarray, float]:
    """nnunetv2's predictor on the same case and weights (every fold, mirroring), in its own process."""
    cmd = [sys.executable, str(REPO / "benchmarks" / "predict_vs_nnunet.py"), "--run", "nnunet", "--model", str(model),
           "--case", *map(str, files), "--labels-out", str(out), "--tta"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"nnU-Net's predictor failed:\n{result.stderr[-3000:]}")
    return np.load(out), json.loads(result.stdout.strip().splitlines()[-1])["wall_s"]


def bench_model(title: str, model: Path, cases: list, thresholds: list[float], with_nnunet: bool = False,
                truth: dict[str, np.ndarray] | None = None) -> None:
    """``truth``: reference labels (z, y, x) per case name, to score every mode against as well."""
    full = Predictor.from_folder(model, device="cpu")
    fast = Predictor.from_folder(model, device="cpu", fast=True)
    adaptive = {t: Predictor.from_folder(model, device="cpu", adaptive=True, adaptive_threshold=t) for t in thresholds}
    members = full.model.labels.members()
    names = full.label_names
    print(f"\n{title}: {len(full.fold_weights)} fold(s) x {2 ** len(full.mirror_axes)} mirrorings; "
          f"fast = every fold, no mirroring, step {fast.step}")
    print(f"{'case':<16}{'mode':<18}{'passes':>12}{'ratio':>7}{'s':>8}  Dice vs full (per class)")
    rows: dict[str, list] = {}  # mode: (case, pass ratio, seconds, Dice per class)
    for name, files in cases:
        image = read_dicom_volume(files[0])[0] if files[0].is_dir() else read_case(files)
        reference, seconds = timed(full, image)
        rows.setdefault("full", []).append((name, 1.0, seconds, {v: 1.0 for v in members}))
        if truth and name in truth:
            scores = class_dice(reference.labels, truth[name], members)
            print(f"  full vs labels: { {names[v]: round(d, 4) for v, d in scores.items()} }")
        runs = [(f"adaptive {t}", p) for t, p in adaptive.items()] + [("fast", fast)]
        labels_of = {"full": reference.labels}
        for mode, predictor in runs:
            prediction, seconds = timed(predictor, image)
            labels_of[mode] = prediction.labels
            passes = prediction.passes
            ratio = passes.ratio if passes else float("nan")
            rows.setdefault(mode, []).append((name, ratio, seconds,
                                              class_dice(prediction.labels, reference.labels, members)))
            if truth and name in truth:
                scores = class_dice(prediction.labels, truth[name], members)
                print(f"  {mode} vs labels: { {names[v]: round(d, 4) for v, d in scores.items()} }")
        if with_nnunet:
            with tempfile.TemporaryDirectory() as tmp:
                labels, seconds = nnunet_labels(model, files, Path(tmp) / "nnunet.npy")
            rows.setdefault("nnU-Net", []).append((name, 1.0, seconds, class_dice(labels, reference.labels, members)))
            for mode, ours in labels_of.items():
                scores = class_dice(ours, labels, members)
                print(f"  {mode} vs nnU-Net's labels: { {names[v]: round(d, 4) for v, d in scores.items()} }")
        for mode, entries in rows.items():
            case, ratio, seconds, dices = entries[-1]
            print(f"{case:<16}{mode:<18}{'':>12}{'-' if ratio != ratio else f'{ratio:.2f}':>7}{seconds:>8.1f}  "
                  f"{' '.join(f'{d:.4f}' for d in dices.values())}")
    full_s = sum(r[2] for r in rows["full"])
    for mode, entries in rows.items():
        mean = {names[v]: round(float(np.mean([r[3][v] for r in entries])), 4) for v in members}
        worst = min(entries, key=lambda r: min(r[3].values()))
        ratios = [r[1] for r in entries if r[1] == r[1]]  # fast mode's tiles differ: no pass ratio
        print(f"  {mode}: passes {f'{np.mean(ratios):.2f}x' if ratios else '-'} of full, time "
              f"{sum(r[2] for r in entries) / full_s:.2f}x of full; mean Dice vs full {mean}; worst case {worst[0]} "
              f"{ {names[v]: round(d, 4) for v, d in worst[3].items()} }")
    if with_nnunet:
        nn_s = sum(r[2] for r in rows["nnU-Net"])
        print("  against nnU-Net's time for the same ensemble: " + ", ".join(
            f"{mode} {sum(r[2] for r in entries) / nn_s:.2f}x" for mode, entries in rows.items() if mode != "nnU-Net"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10, help="unseen phantoms for the demo model (default 10)")
    parser.add_argument("--size", choices=("native", "brats"), default="native",
                        help="phantoms at their own size (~2 mm) or at BraTS's 155 x 240 x 240 at 1 mm")
    parser.add_argument("--first-seed", type=int, default=1000, help="seed of the first phantom (default 1000)")
    parser.add_argument("--threshold", type=float, nargs="+", default=[ADAPTIVE_THRESHOLD],
                        help=f"adaptive thresholds to compare (default {ADAPTIVE_THRESHOLD})")
    parser.add_argument("--nnunet", action="store_true",
                        help="also run nnunetv2's predictor (every fold, mirroring) on the demo model's cases")
    parser.add_argument("--models", nargs="+", choices=GROUPS, default=list(GROUPS),
                        help="demo: the embedded model on phantoms; fixtures: the nnU-Net-trained fixtures; v1: the "
                             "nnunet 1.7.1-trained fixtures; ct: the v1 CT model on TotalSegmentator's real CT series; "
                             "realct: a model trained on real CT on a real CT series it never saw")
    parser.add_argument("--realct-model", type=Path, default=REAL_CT_MODEL,
                        help=f"the model trained on real CT for 'realct' (default {REAL_CT_MODEL})")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if "demo" in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            cases = phantom_cases(Path(tmp), args.cases, args.size, args.first_seed)
            bench_model(f"demo model 'example', {args.size} phantoms", example_model_path(), cases, args.threshold,
                        args.nnunet)
    if "fixtures" in args.models:
        for name in ("3d_fullres", "regions_3d_fullres"):
            model = FIXTURES / name
            bench_model(f"nnU-Net-trained fixture {name}", model, fixture_cases(model), args.threshold)
    if "mosaic" in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("3d_fullres", "regions_3d_fullres"):
                bench_model(f"nnU-Net-trained fixture {name}, four fixture heads in one image", FIXTURES / name,
                            mosaic_case(Path(tmp)), args.threshold)
    if "v1-brats" in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            cases = phantom_cases(Path(tmp), args.cases, args.size, args.first_seed)
            bench_model(f"nnunet-1.7.1-trained fixture Task901_V1BraTS, {args.size} phantoms",
                        V1_FIXTURES / "Task901_V1BraTS.zip", cases, args.threshold)
    if "v1" in args.models:
        for task in ("Task901_V1BraTS", "Task902_V1MRI", "Task903_V1CT"):
            bench_model(f"nnunet-1.7.1-trained fixture {task}", V1_FIXTURES / f"{task}.zip", v1_cases(task),
                        args.threshold)
    if "ct" in args.models:
        if not REAL_CT.is_dir():
            raise SystemExit(f"{REAL_CT} is missing: run scripts/fetch_dicom_test_data.py first")
        bench_model("v1 CT model (trained on CT phantoms) on a real CT series", V1_FIXTURES / "Task903_V1CT.zip",
                    [("TotalSegmentator example CT", [REAL_CT])], args.threshold)
    if "realct" in args.models:
        bench_real_ct(args.realct_model, args.threshold)


def bench_real_ct(model: Path, thresholds: list[float]) -> None:
    """The model trained on real CT (rebuilt when missing) on the series its folds never saw."""
    if not (model / "plans.json").exists():
        if model != REAL_CT_MODEL:
            raise SystemExit(f"{model} holds no model: run scripts/make_real_ct_model.py (or leave out --realct-model)")
        print(f"{model} is missing: training it with scripts/make_real_ct_model.py (about 40 min of CPU)")
        subprocess.run([sys.executable, str(REPO / "scripts" / "make_real_ct_model.py")], check=True)
    if not REAL_CT.is_dir() or not REAL_CT_LABELS.exists():
        subprocess.run([sys.executable, str(REPO / "scripts" / "fetch_dicom_test_data.py")], check=True)
    # NIfTI's (x, y, z) -> the prediction's (z, y, x); merged into the model's five structures
    truth = merged_labels(np.asarray(nib.load(str(REAL_CT_LABELS)).dataobj).transpose(2, 1, 0))
    bench_model("3-fold model trained on real CT (scripts/make_real_ct_model.py) on an unseen real CT series",
                model, [("held-out series", [REAL_CT])], thresholds, truth={"held-out series": truth})


if __name__ == "__main__":
    main()
