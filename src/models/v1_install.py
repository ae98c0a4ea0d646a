"""Installing nnU-Net v1 models: their zips and folders, checked before anything is installed.

v1's exporter writes zip entries starting at ``<configuration>/<Task>/<Trainer>__<Plans>/``; published
zips may also start with ``nnUNet/``. Either unpacks into the install as it is (no conversion: the
original files stay, and models/v1_folder.py reads them). Every ``.pkl`` is read with the data-only
unpickler and every checkpoint loaded safely and checked against the plans, so a hostile or
inconsistent model is refused before it is installed.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import MedSegError
from .safe_pickle import load_data_pickle
from .v1_folder import configuration_of, open_v1_folder


def find_v1_model_folders(root: Path) -> list[Path]:
    """Every folder under ``root`` holding a v1 model (plans.pkl beside fold_* folders)."""
    return sorted({p.parent for p in root.rglob("plans.pkl")
                   if any(c.is_dir() and (c.name.startswith("fold_") or c.name == "all") for c in p.parent.iterdir())})


def has_stray_v1_checkpoints(root: Path) -> bool:
    """v1 checkpoints whose model folder lacks plans.pkl (an incomplete v1 model)."""
    return bool(_stray_model_dirs(root))


def _checkpoints(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.model") if p.parent.name.startswith("fold_") or p.parent.name == "all")


def _stray_model_dirs(root: Path) -> list[Path]:
    return sorted({p.parent.parent for p in _checkpoints(root) if not (p.parent.parent / "plans.pkl").is_file()})


def check_v1_tree(root: Path, folders: list[Path]) -> list[Path]:
    """Check every v1 model under ``root``: plans, trainer, folds, pickles, checkpoints. Returns the folders."""
    stray = _stray_model_dirs(root)
    if stray:
        raise MedSegError(f"nnU-Net v1 model {stray[0].relative_to(root)} has no plans.pkl beside its fold_* "
                          "folders; the model is incomplete. Nothing was installed.")
    from .checkpoint import load_checkpoint  # torch: only when a model is checked
    for folder in folders:
        open_v1_folder(folder, configuration_of(folder))  # plans, trainer and folds, or one clear error
        for pickled in sorted(folder.rglob("*.pkl")):
            load_data_pickle(pickled)  # refuses a pickle that names anything but plain data types
        for checkpoint in _checkpoints(folder):
            load_checkpoint(checkpoint)  # safe loading
    return folders
