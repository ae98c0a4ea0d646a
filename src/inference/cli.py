"""``medseg predict``: segment one case or a folder of cases with an nnU-Net v2 model."""
from __future__ import annotations

import argparse
import time

from ..progress import ProgressBar


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("predict", help="segment images with a model",
                              description="Segment one case (file(s) or a DICOM folder) or a folder of cases "
                                          "(nnU-Net naming: CASE_0000.nii.gz, CASE_0001.nii.gz, ...).")
    p.add_argument("-m", "--model", required=True, help="model name, model folder or model zip")
    p.add_argument("-i", "--input", required=True, nargs="+",
                   help="a folder of cases, a DICOM folder, or the channel files of one case in order")
    p.add_argument("-o", "--output", required=True, help="output folder (or file name for a single case)")
    p.add_argument("--folds", nargs="+", help="folds to ensemble (default: all in the model)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    p.add_argument("--fast", action="store_true", help="laptop mode: no mirroring, less tile overlap (add --folds 0 for one fold)")
    p.add_argument("--no-tta", action="store_true", help="no mirroring test-time augmentation")
    p.add_argument("--step", type=float, help="tile step as a fraction of the patch (default 0.5)")
    p.add_argument("--checkpoint", default="checkpoint_final.pth", help="checkpoint file name in each fold")
    p.add_argument("--configuration", help="configuration, when the model path holds several")
    p.add_argument("--save-probabilities", action="store_true", help="also write probabilities (.npz)")
    p.add_argument("--postprocess", nargs="?", const=True, default=False,
                   help="apply the model's postprocessing.json (or the given file)")
    p.add_argument("--part", default="1/1", help="k/N: process only the k-th of N shares of the cases")
    p.add_argument("--series", nargs="+", help="DICOM series to use (UID, number or description) when a folder "
                                               "holds several; one per channel for multi-channel models")
    p.add_argument("--output-format", choices=("nifti", "dicom-seg"), default="nifti")
    p.add_argument("--missing-channels", nargs="+", default=(), metavar="NAME",
                   help="channels the input lacks (only for models trained with --channel-dropout)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..inference.predictor import Predictor
    from ..models.registry import resolve_model
    from .jobs import plan_jobs

    jobs = plan_jobs(args.input, args.output, args.part, args.output_format)
    predictor = Predictor.from_folder(resolve_model(args.model), folds=args.folds, device=args.device,
                                      fast=args.fast, use_mirroring=False if args.no_tta else None,
                                      step_size=args.step, checkpoint_name=args.checkpoint,
                                      configuration=args.configuration, postprocess=args.postprocess)
    for number, job in enumerate(jobs, 1):
        start = time.perf_counter()
        bar = None if args.quiet else ProgressBar(f"[{number}/{len(jobs)}] {job.name}")
        image = job.read(args.series)
        prediction = predictor.predict(image, save_probabilities=args.save_probabilities,
                                       progress=bar.update if bar else None, missing_channels=args.missing_channels)
        if bar:
            bar.close()
        written = job.write(prediction, image, predictor)
        print(f"{job.name}: wrote {', '.join(str(w) for w in written)} ({time.perf_counter() - start:.1f} s)")
    return 0
