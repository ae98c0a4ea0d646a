"""``medseg train DATASET [CONFIGURATION]`` and ``medseg crossval MODEL``."""
from __future__ import annotations

import argparse

from ..fileio import write_json
from .variants import (
    DEFAULT_EPOCHS,
    DEFAULT_LOSS,
    DEFAULT_TRAINER,
    LOSSES,
    apply_variant,
    find_variant,
    is_variant_name,
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a model on a planned dataset (nnU-Net's recipe)",
        description="Train one fold (or several) of a dataset planned and preprocessed with `medseg plan`. "
                    "The result is an nnU-Net v2 model folder usable by `medseg predict` and by nnU-Net. "
                    "Several GPUs/nodes: launch with `torchrun --nproc_per_node N -m chimerax.medseg.cli train ...`.")
    p.add_argument("dataset", help="dataset id (102), name (Dataset102_Brain) or raw folder")
    p.add_argument("configuration", nargs="?", default="3d_fullres",
                   help="2d, 3d_fullres, 3d_lowres (default 3d_fullres)")
    p.add_argument("-f", "--fold", nargs="+", default=["0"], help="fold(s): 0-4, 'all', or several (default 0)")
    p.add_argument("--epochs", type=int, help="epochs (default 1000, or the trainer variant's)")
    p.add_argument("--iterations", type=int, default=250, help="training iterations per epoch (default 250)")
    p.add_argument("--val-iterations", type=int, default=50, help="validation iterations per epoch (default 50)")
    p.add_argument("--lr", type=float, default=1e-2, help="initial learning rate (default 0.01)")
    p.add_argument("--batch-size", type=int, help="global batch size (default: the plans')")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)")
    p.add_argument("--workers", type=int, help="data loading processes (default: CPU cores - 1, at most 8)")
    p.add_argument("--save-every", type=int, default=50, help="write checkpoint_latest.pth every N epochs (default 50)")
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--continue", dest="existing", action="store_const", const="continue",
                          help="continue the fold's training from its last checkpoint")
    existing.add_argument("--overwrite", dest="existing", action="store_const", const="overwrite",
                          help="replace the model the fold holds (its checkpoints, log and validation are deleted)")
    # the earlier spelling of --continue, kept so existing scripts still run
    existing.add_argument("--resume", dest="existing", action="store_const", const="continue", help=argparse.SUPPRESS)
    p.set_defaults(existing="refuse")
    p.add_argument("--trainer", help="an nnU-Net trainer by name (nnUNetTrainer_2000epochs, nnUNetTrainerNoMirroring, "
                                     "nnUNetTrainerDiceLoss, ...) or your own: path/to/file.py:ClassName or "
                                     "package.module:ClassName")
    p.add_argument("--loss", choices=list(LOSSES), help="loss (default dice_ce: Dice + cross-entropy, nnU-Net's)")
    p.add_argument("--num-folds", type=int, metavar="K",
                   help="folds of a new splits_final.json (default 5; nnU-Net's shuffled KFold, seed 12345); "
                        "an existing file with another count is refused")
    p.add_argument("--pretrained", help="start from this model's weights (folder, .pth, or installed model name)")
    p.add_argument("--freeze-stages", type=int, default=0, help="with --pretrained: freeze the first N encoder stages")
    p.add_argument("--splits", help="custom splits_final.json (e.g. forcing hard cases into training)")
    p.add_argument("--patients", help="JSON mapping case -> patient: folds never split a patient")
    p.add_argument("--channel-dropout", type=float, default=0.0,
                   help="probability of zeroing one input channel per sample (missing-sequence robustness)")
    p.add_argument("--no-augmentation", action="store_true", help="train without data augmentation")
    p.add_argument("--no-validation", action="store_true", help="skip the full-image validation after training")
    p.add_argument("--save-probabilities", action="store_true",
                   help="keep validation probabilities (needed to compare ensembles of configurations)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--plans", default="nnUNetPlans", help="plans name (default nnUNetPlans)")
    p.add_argument("-o", "--output", help="results folder for this dataset (default: <results>/<dataset>)")
    p.add_argument("--preprocessed", help="the dataset's preprocessed folder (default: <preprocessed>/<dataset>)")
    p.add_argument("--result-file", help="when training succeeds, write {\"model_folder\": PATH} to this JSON file "
                                         "(for programs that run medseg train, e.g. ChimeraX's segment train)")
    p.set_defaults(func=run_train)

    c = subparsers.add_parser("crossval", help="summarise cross-validation, choose postprocessing and configuration",
                              description="Merge the validated folds of a model folder into "
                                          "crossval_results_folds_*/ (summary.json, postprocessing.json); with "
                                          "several model folders, also choose the best configuration or ensemble.")
    c.add_argument("models", nargs="+", help="model folder(s) <Trainer>__<Plans>__<configuration>")
    c.add_argument("-f", "--folds", nargs="+", default=["0", "1", "2", "3", "4"], help="folds (default 0-4)")
    c.set_defaults(func=run_crossval)


def options_from_args(args: argparse.Namespace):
    """The run's options; a trainer variant's settings are applied here, with --epochs/--loss checked
    against it (the variant then names the model folder)."""
    from .trainer import TrainingOptions  # loaded when the command runs (fast start-up)
    options = TrainingOptions(
        epochs=args.epochs or DEFAULT_EPOCHS, loss=args.loss or DEFAULT_LOSS, num_folds=args.num_folds,
        iterations_per_epoch=args.iterations, validation_iterations=args.val_iterations,
        initial_lr=args.lr, save_every=args.save_every, seed=args.seed, device=args.device, num_workers=args.workers,
        batch_size=args.batch_size, augment=not args.no_augmentation, channel_drop_p=args.channel_dropout,
        validate=not args.no_validation, save_probabilities=args.save_probabilities, pretrained=args.pretrained,
        freeze_stages=args.freeze_stages, splits_file=args.splits, patients_file=args.patients)
    spec = args.trainer or DEFAULT_TRAINER
    if is_variant_name(spec):
        options = apply_variant(options, find_variant(spec), args.epochs, args.loss)
    return options


def custom_trainer(args: argparse.Namespace) -> str | None:
    """The --trainer value when it names a class of the user's (variants are options, not classes)."""
    return args.trainer if args.trainer and not is_variant_name(args.trainer) else None


def run_train(args: argparse.Namespace) -> int:
    from ..errors import MedSegError  # loaded when the command runs (fast start-up)
    from .run import train  # loaded when the command runs (fast start-up)
    if (args.epochs is not None and args.epochs < 1) or args.iterations < 1:
        raise MedSegError("--epochs and --iterations must be at least 1.")
    if args.num_folds is not None and args.num_folds < 2:
        raise MedSegError("--num-folds must be at least 2 (train on every case with --fold all).")
    if args.freeze_stages and not args.pretrained:
        raise MedSegError("--freeze-stages freezes transferred layers; it needs --pretrained.")
    if not 0 <= args.channel_dropout < 1:
        raise MedSegError("--channel-dropout is a probability in [0, 1).")
    model = train(args.dataset, args.configuration, args.fold, options_from_args(args), custom_trainer(args),
                  args.plans, args.output, args.preprocessed, args.existing)
    print(f"Model folder: {model}")
    if args.result_file:
        write_json(args.result_file, {"model_folder": str(model)})
    return 0


def run_crossval(args: argparse.Namespace) -> int:
    from ..evaluation.crossval import (  # loaded when the command runs (fast start-up)
        check_same_dataset,
        choose_best_configuration,
        summarize_crossval,
    )
    if len(args.models) > 1:
        check_same_dataset(args.models)  # before any summary is written
    for model in args.models:
        summary = summarize_crossval(model, args.folds)
        print(f"{model}: cross-validated mean foreground Dice {summary['foreground_mean']['Dice']:.4f}")
    if len(args.models) > 1:
        best = choose_best_configuration(args.models, args.folds)["best"]
        print(f"Best: {' + '.join(best['models'])} (Dice {best['foreground_dice']:.4f})")
    return 0
