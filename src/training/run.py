"""Set up and run a training from a dataset id: find its plans and preprocessed data, pick the
trainer class, and train one fold (or all five) in this process or under torchrun."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ..datasets.dataset_json import load_dataset
from ..datasets.paths import data_folder, find_dataset, preprocessed_folder
from ..errors import MedSegError
from ..evaluation.crossval import summarize_crossval
from ..fileio import read_json
from .distributed import distributed_from_env, finish_distributed
from .extension import load_trainer_class
from .outputs import check_existing_choice, refuse_existing
from .trainer import Trainer, TrainingOptions, TrainingSetup
from .variants import DEFAULT_TRAINER, apply_variant, find_variant, is_variant_name

DEFAULT_PLANS = "nnUNetPlans"


def model_folder_name(trainer_name: str, plans_name: str, configuration: str) -> str:
    return f"{trainer_name}__{plans_name}__{configuration}"


def make_setup(dataset: str, configuration: str = "3d_fullres", fold: str = "0", plans_name: str = DEFAULT_PLANS,
               trainer_name: str = "nnUNetTrainer", output: str | os.PathLike | None = None,
               preprocessed: str | os.PathLike | None = None) -> TrainingSetup:
    """Everything needed to train a fold of a planned and preprocessed dataset."""
    raw = find_dataset(dataset)
    pre = Path(preprocessed) if preprocessed else preprocessed_folder(raw)
    plans_file = pre / f"{plans_name}.json"
    if not plans_file.is_file():
        raise MedSegError(f"No plans {plans_file}. Run `medseg plan {raw.name}` first.")
    plans = read_json(plans_file)
    if configuration not in plans.get("configurations", {}):
        raise MedSegError(f"The plans have no configuration {configuration!r} "
                          f"(available: {', '.join(plans.get('configurations', {}))}).")
    fingerprint_file = pre / "dataset_fingerprint.json"
    fingerprint = read_json(fingerprint_file) if fingerprint_file.is_file() else None
    dataset_json = load_dataset(raw).meta
    results = Path(output) if output else data_folder("results") / raw.name
    setup = TrainingSetup(plans, configuration, dataset_json, pre,
                          results / model_folder_name(trainer_name, plans_name, configuration), str(fold),
                          fingerprint, raw)
    if not setup.data_dir.is_dir():
        raise MedSegError(f"{configuration} is not preprocessed ({setup.data_dir} is missing). "
                          f"Run `medseg plan {raw.name} -c {configuration}`.")
    return setup


def train(dataset: str, configuration: str = "3d_fullres", folds=("0",), options: TrainingOptions | None = None,
          trainer: str | None = None, plans_name: str = DEFAULT_PLANS, output=None, preprocessed=None,
          existing: str = "refuse", report: Callable[[str], None] | None = None,
          should_stop: Callable[[], bool] | None = None) -> Path:
    """Train the given folds one after another; after several folds, summarise the cross-validation.

    ``trainer``: an nnU-Net variant's name (``nnUNetTrainer_2000epochs``, see ``variants.py``) or a
    custom class (``path/to/file.py:Class``). ``existing``: ``refuse``, ``continue`` or ``overwrite``
    a fold that already holds a model; every fold is checked before the first one starts.
    """
    if not folds:
        raise MedSegError("Give at least one fold to train (0-4 or all).")
    trainer_class, options = resolve_trainer(trainer, options or TrainingOptions())
    name = trainer_class.__name__ if trainer_class is not Trainer else (options.variant or DEFAULT_TRAINER)
    setups = [make_setup(dataset, configuration, str(fold), plans_name, name, output, preprocessed) for fold in folds]
    refuse_existing([setup.fold_dir for setup in setups], check_existing_choice(existing))
    dist = distributed_from_env(options.device)
    model_dirs: list[Path] = []
    try:
        for setup in setups:
            model_dirs.append(trainer_class(setup, options, dist, report).run(existing=existing,
                                                                                should_stop=should_stop))
        numeric = [str(f) for f in folds if str(f).isdigit()]
        if dist.is_main and len(numeric) > 1 and options.validate:
            summary = summarize_crossval(model_dirs[-1], numeric)
            (report or print)(f"Cross-validation over folds {', '.join(numeric)}: mean foreground Dice "
                              f"{summary['foreground_mean']['Dice']:.4f}")
    finally:
        finish_distributed(dist)
    return model_dirs[-1]


def resolve_trainer(spec: str | None, options: TrainingOptions) -> tuple[type, TrainingOptions]:
    """(trainer class, options with the variant's settings) for a variant name or a custom class."""
    if spec is None:
        return Trainer, options
    if is_variant_name(spec):
        return Trainer, apply_variant(options, find_variant(spec))
    return load_trainer_class(spec), options
