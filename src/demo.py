"""``medseg demo``: segment the embedded example case with the embedded model (no download)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help="segment the embedded example case (no download needed)")
    p.add_argument("-o", "--output", default="out", help="output folder (default: ./out)")
    p.add_argument("--device", default="auto")
    p.add_argument("--fast", action="store_true")
    p.set_defaults(func=run)


def describe_run(files, image, predictor, labels: np.ndarray, seconds: float, device) -> str:
    """A few lines a newcomer can read: the case, the model, the time, Dice against the truth."""
    from .images import read_image  # loaded when the command runs (fast start-up)
    model = predictor.model
    lines = [f"case:   {files[0].parent.name} ({', '.join(f.name for f in files)}; "
             f"{' x '.join(map(str, image.shape))} voxels at {' x '.join(f'{s:g}' for s in image.spacing)} mm)",
             f"model:  {model.path.name} ({model.configuration_name}, folds {', '.join(model.select_folds(None))}; "
             f"labels: {', '.join(predictor.label_names.values())})",
             f"time:   {seconds:.1f} s on {device}"]
    truth_path = Path(files[0]).parent / "ground_truth.nii.gz"
    if truth_path.is_file():
        from .evaluation.metrics import Region, case_metrics  # loaded when the command runs (fast start-up)
        truth = read_image(truth_path)
        members = model.labels.members()  # a region (whole tumour) is scored on every value it spans
        regions = [Region(name, members[value]) for value, name in predictor.label_names.items()]
        rows = case_metrics(labels, truth.array[0].astype(np.int16), regions, truth.spacing)
        lines.append("Dice vs ground truth: " + ", ".join(f"{r['label']} {r['dice']:.3f}" for r in rows))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from .images import read_case, write_label_image  # loaded when the command runs (fast start-up)
    from .inference.predictor import (  # loaded when the command runs (fast start-up)
        Predictor,
        example_case_paths,
        example_model_path,
    )
    from .progress import ProgressBar  # loaded when the command runs (fast start-up)

    files = example_case_paths()
    start = time.perf_counter()
    predictor = Predictor.from_folder(example_model_path(), device=args.device, fast=args.fast)
    image = read_case(files)
    bar = ProgressBar("example")
    prediction = predictor.predict(image, progress=bar.update)
    bar.close()
    elapsed = time.perf_counter() - start
    label_path = write_label_image(prediction.labels, image, Path(args.output) / "example_labels.nii.gz")
    print(describe_run(files, image, predictor, prediction.labels, elapsed, predictor.device))
    print(f"labels: {label_path}")
    return 0
