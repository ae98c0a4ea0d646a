"""``medseg evaluate PRED_DIR REF_DIR [REF_DIR ...]``: per-case metrics, summaries, comparison,
hard cases, stability across references and pictures."""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="score predicted label maps against reference (ground-truth) label maps",
        description="Dice, IoU, HD95, average surface distance (mm), volume difference and missed lesions per case "
                    "and label; mean, median and spread per label. Several REF_DIRs (annotators) add a stability "
                    "test. Results are printed and written as CSV and JSON.")
    p.add_argument("pred_dir", metavar="PRED_DIR", help="folder of predicted label maps (CASE.nii.gz)")
    p.add_argument("ref_dirs", metavar="REF_DIR", nargs="+",
                   help="folder(s) of reference label maps with the same file names; the cases with a prediction "
                        "are scored (e.g. one fold's validation against the whole dataset's labels)")
    p.add_argument("--labels", nargs="+", metavar="LABEL",
                   help="labels to score: values (1 2), named values (liver=1) or regions (tumor=2,3); "
                        "default: every value found")
    p.add_argument("--dataset-json", metavar="FILE", help="take the labels (and regions) from an nnU-Net dataset.json")
    p.add_argument("-o", "--output", metavar="DIR", help="where to write the results (default: PRED_DIR/evaluation)")
    p.add_argument("--compare", metavar="OTHER_PRED_DIR", help="a second model's predictions: side by side with "
                   "per-case differences and a Wilcoxon signed-rank test")
    p.add_argument("--hard-below", type=float, metavar="DICE",
                   help="list cases where a label's Dice is below DICE and write splits_final.json with them in "
                        "training")
    p.add_argument("--num-folds", type=int, metavar="K", help="with --hard-below and no --splits: make K folds of "
                   "the other cases (default 5)")
    p.add_argument("--splits", metavar="FILE", help="an existing splits_final.json to move the hard cases into "
                   "(default: make 5 folds of the evaluated cases)")
    p.add_argument("--plots", action="store_true",
                   help="also save box plots and a per-case bar chart (PNG; needs matplotlib)")
    p.add_argument("--resample", action="store_true", help="resample predictions that are on another grid than "
                   "their reference (nearest neighbour) instead of refusing them")
    p.add_argument("--missing-as-empty", action="store_true", help="score every reference case, one without a "
                   "prediction as an empty prediction (default: only the cases with a prediction)")
    p.add_argument("--ignore-unlisted", action="store_true", help="score only the listed labels even if the maps "
                   "hold other values")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from .report import run  # scipy and friends load only when the command runs
    return run(args)
