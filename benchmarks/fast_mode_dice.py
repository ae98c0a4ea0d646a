"""What fast mode costs in Dice: full mode (all folds, mirroring, step 0.5) vs fast mode (all folds,
no mirroring, step 0.75). Default: the embedded 5-fold demo model on fresh phantoms it never saw.

    python benchmarks/fast_mode_dice.py [--model MODEL_DIR] [--cases CASES_DIR | --phantoms N]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from chimerax.medseg.images import find_cases, read_case
from chimerax.medseg.inference.predictor import Predictor, example_model_path


def phantom_cases(folder: Path, count: int, seed: int = 1000) -> Path:
    """``count`` phantoms from a seed the demo model's training data (seed 0) did not use."""
    from chimerax.medseg.datasets.phantom import make_phantom, save_case
    rng = np.random.default_rng(seed)
    for i in range(count):
        save_case(make_phantom(rng), folder, None, f"phantom_{i:03d}")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(example_model_path()))
    parser.add_argument("--cases", help="folder of cases (default: fresh phantoms)")
    parser.add_argument("--phantoms", type=int, default=10)
    args = parser.parse_args()
    full = Predictor.from_folder(args.model, device="cpu")
    fast = Predictor.from_folder(args.model, device="cpu", fast=True)
    folder = Path(args.cases) if args.cases else phantom_cases(Path(tempfile.mkdtemp()), args.phantoms)
    cases = {name: files for name, files in find_cases(folder).items() if len(files) == len(full.channel_names)}
    members = full.model.labels.members()  # regions are scored on every value they span
    worst, every, times = {}, {}, {"full": 0.0, "fast": 0.0}
    print(f"model {args.model}: full = {len(full.fold_weights)} folds, mirroring, step {full.step}; fast = "
          f"{len(fast.fold_weights)} folds, mirroring {fast.mirroring}, step {fast.step}; {len(cases)} cases")
    for name, files in sorted(cases.items()):
        image = read_case(files)
        results = {}
        for mode, predictor in (("full", full), ("fast", fast)):
            start = time.perf_counter()
            results[mode] = predictor.predict(image).labels
            times[mode] += time.perf_counter() - start
        scores = {}
        for value, label in full.label_names.items():
            a, b = np.isin(results["full"], members[value]), np.isin(results["fast"], members[value])
            total = a.sum() + b.sum()
            scores[label] = 2 * (a & b).sum() / total if total else 1.0
            worst[label] = min(worst.get(label, 1.0), scores[label])
            every.setdefault(label, []).append(scores[label])
        print(f"{name}: Dice fast vs full " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    print("worst per class: " + ", ".join(f"{k} {v:.4f}" for k, v in worst.items()))
    print("mean per class: " + ", ".join(f"{k} {np.mean(v):.4f}" for k, v in every.items()))
    print(f"time: full {times['full']:.1f} s, fast {times['fast']:.1f} s ({times['full'] / times['fast']:.1f}x)")


if __name__ == "__main__":
    main()
