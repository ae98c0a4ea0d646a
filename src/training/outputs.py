"""What a training does with a fold that already holds a model, and results that would go stale.

``existing`` is one of :data:`EXISTING`: ``refuse`` (the default: never replace a model silently),
``continue`` (go on from its last checkpoint) or ``overwrite`` (delete the fold's checkpoints,
logs and validation, then train afresh). Whenever a fold's weights are about to change, its
validation results and every cross-validation summary that includes it are deleted first, so
no summary outlives the weights it scored.
"""
from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from ..errors import MedSegError
from . import checkpoints as ckpt

EXISTING = ("refuse", "continue", "overwrite")
# everything a fold's training writes (the checkpoints, the log, the plot, the full-image validation)
FOLD_FILES = (ckpt.FINAL, ckpt.LATEST, ckpt.BEST, "training_log.json", "training_log.txt", "progress.png")
VALIDATION = "validation"
CROSSVAL_PREFIX = "crossval_results_folds_"


def check_existing_choice(existing: str) -> str:
    if existing not in EXISTING:
        raise MedSegError(f"Unknown choice {existing!r} for an existing model; use one of {', '.join(EXISTING)}.")
    return existing


def held_model(fold_dir: Path) -> Path | None:
    """The checkpoint that makes ``fold_dir`` hold a (finished or interrupted) model, if any."""
    for name in (ckpt.FINAL, ckpt.LATEST):
        if (fold_dir / name).is_file():
            return fold_dir / name
    return None


def refuse_existing(fold_dirs: Sequence[Path], existing: str) -> None:
    """With ``existing == "refuse"``, stop before any work if a fold already holds a model."""
    if check_existing_choice(existing) != "refuse":
        return
    for fold_dir in fold_dirs:
        found = held_model(Path(fold_dir))
        if found is not None:
            state = "a finished" if found.name == ckpt.FINAL else "an interrupted"
            raise MedSegError(f"{fold_dir} already holds {state} model ({found.name}). Pass --continue to "
                              "continue its training, or --overwrite to replace it (its checkpoints, log and "
                              "validation are deleted).")


def stale_results(model_dir: Path, fold: str) -> list[Path]:
    """The fold's validation folder and the cross-validation summaries that include the fold."""
    found = [model_dir / f"fold_{fold}" / VALIDATION]
    for folder in sorted(model_dir.glob(f"{CROSSVAL_PREFIX}*")):
        if str(fold) in folder.name[len(CROSSVAL_PREFIX):].split("_"):
            found.append(folder)
    return [p for p in found if p.exists()]


def discard_stale_results(model_dir: Path, fold: str) -> list[Path]:
    """Delete what :func:`stale_results` finds (the weights it scored are about to change)."""
    removed = stale_results(Path(model_dir), fold)
    for path in removed:
        shutil.rmtree(path)
    return removed


def clear_fold(model_dir: Path, fold: str) -> list[Path]:
    """``--overwrite``: delete the fold's checkpoints, log, plot and stale results."""
    fold_dir = Path(model_dir) / f"fold_{fold}"
    removed = [fold_dir / name for name in FOLD_FILES if (fold_dir / name).is_file()]
    for path in removed:
        path.unlink()
    return removed + discard_stale_results(Path(model_dir), fold)
