"""``medseg predict``: segment one case or a folder of cases with an nnU-Net v2 model."""
from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

from ..errors import MedSegError
from ..images.colors import label_colors
from ..progress import ProgressBar, detail
from .jobs import OUTPUT_FORMATS, plan_jobs
from .options import add_arguments, from_namespace
from .preview import check_matplotlib, write_preview
from .structure_outputs import planned_outputs, write_structure_outputs


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("predict", help="segment images with a model",
                              description="Segment one case (file(s) or a DICOM folder) or a folder of cases "
                                          "(nnU-Net naming: CASE_0000.nii.gz, CASE_0001.nii.gz, ...).")
    p.add_argument("-i", "--input", required=True, nargs="+",
                   help="a folder of cases, a DICOM folder, or the channel files of one case in order")
    p.add_argument("-o", "--output", required=True, help="output folder (or file name for a single case)")
    add_arguments(p)
    p.add_argument("--save-probabilities", action="store_true", help="also write probabilities (.npz)")
    p.add_argument("--part", default="1/1", help="k/N: process only the k-th of N shares of the cases")
    p.add_argument("--series", nargs="+", help="DICOM series to use (UID, number or description) when a folder "
                                               "holds several; one per channel for multi-channel models")
    p.add_argument("--output-format", choices=OUTPUT_FORMATS, default="nifti",
                   help="nifti (default); dicom-seg or rtstruct for DICOM input (referencing its series)")
    p.add_argument("--preview", metavar="PNG",
                   help="also draw a picture of what was found (slices with outlines, orientation, legend with "
                        "volumes; needs matplotlib): a file for one case, a folder of CASE.png for several")
    p.add_argument("--prev-stage-predictions", metavar="DIR",
                   help="for a cascade stage (-c 3d_cascade_fullres): the previous stage's predictions, one "
                        "CASE.nii.gz per case (default: run the 3d_lowres stage from the same results folder)")
    p.add_argument("--output-inside-input", action="store_true",
                   help="allow the output folder inside an input folder (refused by default: the next run would "
                        "read the results as cases)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .cascade_predictor import CascadePredictor  # imports torch: only when predicting, not for `medseg --help`
    from .ensemble import make_predictor  # imports torch: only when predicting, not for `medseg --help`

    options = from_namespace(args)
    if options.adaptive and args.save_probabilities:
        raise MedSegError("--save-probabilities cannot be used with --adaptive: the probabilities would be the "
                          "full ensemble's only where every pass ran. Leave out one of them.")
    jobs = plan_jobs(args.input, args.output, args.part, args.output_format,
                     save_probabilities=args.save_probabilities, allow_output_inside_input=args.output_inside_input,
                     extra_outputs=lambda out: planned_outputs(out, options.statistics, options.split_classes))
    if args.preview:
        check_matplotlib()  # before the work, not after it
    # one model (TotalSegmentator's multi-part ones too), a cascade, or an ensemble
    predictor = make_predictor(options, args.prev_stage_predictions, args.save_probabilities)
    skipped = _check_cases(jobs, predictor if isinstance(predictor, CascadePredictor) else None)
    good = [job for job in jobs if job.name not in skipped]
    for number, job in enumerate(good, 1):
        start = time.perf_counter()
        bar = ProgressBar(f"[{number}/{len(good)}] {job.name}")
        try:  # a case the model cannot take (channels, geometry) is skipped in a cohort, refused alone
            image = job.read(args.series)
            settings = dict(save_probabilities=args.save_probabilities, progress=bar.update,
                            missing_channels=options.missing_channels)
            if isinstance(predictor, CascadePredictor):  # the case's name finds its --prev-stage-predictions file
                prediction = predictor.predict(image, case_name=job.name, **settings)
            else:
                prediction = predictor.predict(image, **settings)
        except MedSegError as exc:
            if len(jobs) == 1:
                raise
            skipped[job.name] = str(exc)
            warnings.warn(f"skipped case {job.name}: {exc}", stacklevel=1)
            continue
        finally:
            bar.close()
        detail(f"{job.name}: " + ", ".join(f"{k} {v:.1f} s" for k, v in prediction.timings.items()))
        written = job.write(prediction, image, predictor)
        written += write_structure_outputs(prediction.labels, image, predictor.label_names, job.output,
                                           options.statistics, options.split_classes)
        if args.preview:
            written.append(_preview(args.preview, len(jobs), job.name, image, prediction.labels, predictor))
        print(f"{job.name}: wrote {', '.join(str(w) for w in written)} ({time.perf_counter() - start:.1f} s)")
        if prediction.passes is not None:
            print(f"{job.name}: adaptive ensembling ran {prediction.passes}")
    if skipped:
        listing = "; ".join(f"{name} ({reason})" for name, reason in skipped.items())
        raise MedSegError(f"{len(skipped)} of {len(jobs)} case(s) were skipped, the others written: {listing}")
    return 0


def _check_cases(jobs: list, cascade=None) -> dict[str, str]:
    """Every case's files checked before the first prediction (with a cascade's given previous-stage
    predictions, that each case has one); a cohort skips (and names) the bad ones, a single case is refused."""
    bad = {}
    for job in jobs:
        try:
            job.check()
            if cascade is not None:
                cascade.previous_stage_file(job.name)
        except MedSegError as exc:
            if len(jobs) == 1:
                raise
            bad[job.name] = str(exc)
            warnings.warn(f"skipping case {job.name}: {exc}", stacklevel=1)
    return bad


def _preview(target: str, count: int, name: str, image, labels, predictor) -> Path:
    path = Path(target) / f"{name}.png" if count > 1 or Path(target).is_dir() else Path(target)
    names = predictor.label_names
    return write_preview(image, labels, names, label_colors(names, predictor.model.dataset_json), path,
                         predictor.label_members, title=f"{name}: {predictor.model.path.name}")
