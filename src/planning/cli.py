"""``medseg plan ID``: fingerprint, plans and preprocessing, with a readable summary of every decision."""
from __future__ import annotations

import argparse

from ..errors import MedSegError
from .presets import PRESETS


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("plan", help="plan and preprocess a dataset for training",
                              description="Extract the dataset fingerprint, write nnU-Net plans (nnUNetPlans.json) "
                                          "and preprocess every training case, explaining each decision.")
    p.add_argument("dataset", help="dataset id (102), name (Dataset102_Brain) or folder")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS),
                   help="planner: nnU-Net default or residual-encoder presets (M 8 GB, L 24 GB, XL 40 GB)")
    p.add_argument("-c", "--configurations", nargs="+", help="configurations to preprocess (default: all planned)")
    p.add_argument("--gpu-memory", type=float, help="GPU memory target in GB (default: the preset's)")
    p.add_argument("-np", "--processes", type=int, default=2, help="parallel processes (default 2)")
    p.add_argument("--no-preprocess", action="store_true", help="only fingerprint and plans")
    p.add_argument("--no-verify", action="store_true", help="skip the dataset integrity check")
    p.add_argument("-o", "--output", help="output folder (default: <preprocessed>/<dataset>)")
    p.add_argument("--intensity-samples", type=float, default=1e8,
                   help="foreground voxels sampled for the intensity statistics (default 1e8, as nnU-Net)")
    p.add_argument("--base-features", type=int, help="features of the first stage (default 32, as nnU-Net)")
    p.add_argument("--max-features", type=int, help="cap on features per stage (default 320 in 3d, 512 in 2d)")
    p.add_argument("--plans-from", metavar="MODEL",
                   help="transfer learning: carry over a pretrained model's plans (model folder, installed name or "
                        "plans .json) instead of planning, as nnUNetv2_move_plans_between_datasets")
    p.add_argument("--plans-name", help="with --plans-from: the name of the carried plans "
                                        "(default <source plans>_from_<source dataset>)")
    p.add_argument("--keep-source-normalization", action="store_true",
                   help="with --plans-from: also carry over the source's intensity normalization and statistics "
                        "(nnU-Net's behaviour; default: this dataset's own)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..progress import ProgressBar  # loaded when the command runs (fast start-up)
    from .run import plan_dataset  # loaded when the command runs (fast start-up)

    if (args.plans_name or args.keep_source_normalization) and not args.plans_from:
        raise MedSegError("--plans-name and --keep-source-normalization go with --plans-from MODEL.")
    if args.plans_from and args.preset != "default":
        raise MedSegError("--preset plans a network; --plans-from carries one over. Give one of them.")
    bar = ProgressBar("plan")  # silent with --quiet
    try:
        result = plan_dataset(args.dataset, args.preset, args.configurations, args.processes,
                              preprocess=not args.no_preprocess, verify=not args.no_verify, output=args.output,
                              gpu_memory_gb=args.gpu_memory, progress=bar.update if bar else None,
                              foreground_samples=args.intensity_samples, base_features=args.base_features,
                              max_features=args.max_features, plans_from=args.plans_from,
                              plans_name=args.plans_name, keep_source_normalization=args.keep_source_normalization)
    finally:
        if bar:
            bar.close()
    print(result["summary"])
    print(f"\nPlans: {result['plans_file']}")
    for name, info in result["preprocessed"].items():
        print(f"Preprocessed {name}: {info['done']} new, {info['skipped']} already done -> {info['folder']}")
    return 0
