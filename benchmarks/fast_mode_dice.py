"""What fast mode costs in Dice: full mode (all folds, mirroring, step 0.5) vs fast mode (one fold,
no mirroring, step 0.75) with a model trained by nnU-Net, on the parity fixtures' cases.

    python benchmarks/fast_mode_dice.py [--model MODEL_DIR] [--cases CASES_DIR]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


from chimerax.medseg.images import find_cases, read_case
from chimerax.medseg.inference.predictor import Predictor

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "data" / "nnunet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(FIXTURES / "3d_fullres"))
    parser.add_argument("--cases", default=str(FIXTURES / "cases"))
    args = parser.parse_args()
    full = Predictor.from_folder(args.model, device="cpu")
    fast = Predictor.from_folder(args.model, device="cpu", fast=True)
    cases = {name: files for name, files in find_cases(args.cases).items() if len(files) == len(full.channel_names)}
    worst, times = {}, {"full": 0.0, "fast": 0.0}
    for name, files in sorted(cases.items()):
        image = read_case(files)
        results = {}
        for mode, predictor in (("full", full), ("fast", fast)):
            start = time.perf_counter()
            results[mode] = predictor.predict(image).labels
            times[mode] += time.perf_counter() - start
        scores = {}
        for value, label in full.label_names.items():
            a, b = results["full"] == value, results["fast"] == value
            total = a.sum() + b.sum()
            scores[label] = 2 * (a & b).sum() / total if total else 1.0
            worst[label] = min(worst.get(label, 1.0), scores[label])
        print(f"{name}: Dice fast vs full " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    print("worst per class: " + ", ".join(f"{k} {v:.4f}" for k, v in worst.items()))
    print(f"time: full {times['full']:.1f} s, fast {times['fast']:.1f} s ({times['full'] / times['fast']:.1f}x)")


if __name__ == "__main__":
    main()
