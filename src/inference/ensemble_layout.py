"""Where an ensemble of configurations keeps its cross-validation, named as nnU-Net names it.

nnU-Net's ``find_best_configuration`` writes each ensemble's cross-validation (averaged labels,
``summary.json``, postprocessing) to ``<results>/<dataset>/ensembles/ensemble___A___B___0_1_2_3_4/``
and its choice to ``<results>/<dataset>/inference_information.json``; ``medseg crossval`` writes the
same, and ``medseg predict -m A -m B --postprocess`` looks there.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

INFERENCE_INFORMATION = "inference_information.json"
ENSEMBLES_DIR = "ensembles"  # beside the members' folders, as nnU-Net's find_best_configuration writes it
_SEPARATOR = "___"


def ensemble_name(member_dirs: Sequence[str | Path], folds: Sequence[str]) -> str:
    """nnU-Net's name for an ensemble: ``ensemble___<member>___<member>___<folds, 0_1_2_3_4>``."""
    return _SEPARATOR.join(["ensemble", *(Path(d).name for d in member_dirs), "_".join(str(f) for f in folds)])


def ensemble_folder(member_dirs: Sequence[str | Path], folds: Sequence[str]) -> Path:
    """Where the cross-validation of an ensemble lives: ``<dataset results>/ensembles/<name>/``."""
    return Path(member_dirs[0]).parent / ENSEMBLES_DIR / ensemble_name(member_dirs, folds)


def find_ensemble_postprocessing(member_dirs: Sequence[Path], folds: Sequence[str]) -> Path | None:
    """The postprocessing.json ``medseg crossval`` chose for this ensemble (members in any order):
    for these folds if there is one, else for any folds."""
    wanted = sorted(Path(d).name for d in member_dirs)
    found: list[tuple[bool, Path]] = []
    for parent in dict.fromkeys(Path(d).parent for d in member_dirs):
        for folder in sorted((parent / ENSEMBLES_DIR).glob(f"ensemble{_SEPARATOR}*")):
            parts = folder.name.split(_SEPARATOR)[1:]
            if len(parts) >= 2 and sorted(parts[:-1]) == wanted and (folder / "postprocessing.json").is_file():
                found.append((parts[-1] != "_".join(folds), folder / "postprocessing.json"))
    return min(found)[1] if found else None
