"""Where datasets live: the nnU-Net raw / preprocessed / results folders, and finding a dataset by id or name.

One data root (``MEDSEG_DATA``, default ``~/medseg_data``) holds ``raw/``, ``preprocessed/`` and
``results/``. nnU-Net's own variables (``nnUNet_raw``, ``nnUNet_preprocessed``, ``nnUNet_results``)
win when set, so an existing nnU-Net setup works unchanged.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import MedSegError

DATASET_FOLDER = re.compile(r"^Dataset(?P<id>\d{3})_(?P<name>.+)$")

_ENV = {"raw": "nnUNet_raw", "preprocessed": "nnUNet_preprocessed", "results": "nnUNet_results"}


def data_root() -> Path:
    """The folder holding raw/, preprocessed/ and results/ (``MEDSEG_DATA`` or ``~/medseg_data``)."""
    return Path(os.environ.get("MEDSEG_DATA") or Path.home() / "medseg_data").expanduser()


def data_folder(kind: str) -> Path:
    """The ``raw``, ``preprocessed`` or ``results`` folder; nnU-Net's variables take precedence."""
    if kind not in _ENV:
        raise ValueError(f"unknown data folder kind {kind!r}")
    value = os.environ.get(_ENV[kind])
    return Path(value).expanduser() if value else data_root() / kind


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """``Dataset102_Brain`` from (102, "Brain")."""
    if not 0 <= int(dataset_id) <= 999:
        raise MedSegError(f"Dataset ids have three digits (0-999); got {dataset_id}.")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_\-]*", name):
        raise MedSegError(f"Dataset name {name!r} must be letters, digits, '_' or '-' (no spaces).")
    return f"Dataset{int(dataset_id):03d}_{name}"


def find_dataset(id_or_name: str | int, root: str | os.PathLike | None = None) -> Path:
    """The raw dataset folder for ``102``, ``Dataset102_Brain``, ``Brain`` or a path to the folder itself."""
    text = str(id_or_name).strip()
    as_path = Path(text).expanduser()
    if as_path.is_dir() and (as_path / "dataset.json").is_file():
        return as_path
    root = Path(root) if root is not None else data_folder("raw")
    if not root.is_dir():
        raise MedSegError(f"The raw data folder {root} does not exist. Set MEDSEG_DATA (or nnUNet_raw) to the folder "
                          "holding your DatasetNNN_Name folders, or give the dataset's path.")
    folders = {p: m for p in sorted(root.iterdir()) if p.is_dir() and (m := DATASET_FOLDER.match(p.name))}
    candidates = list(folders)
    if text.isdigit():
        matches = [p for p, m in folders.items() if int(m["id"]) == int(text)]
    else:
        matches = [p for p, m in folders.items() if p.name == text or m["name"] == text]
    if not matches:
        known = ", ".join(p.name for p in candidates) or "none"
        raise MedSegError(f"No dataset {text!r} in {root} (found: {known}). Check the id or name, or set MEDSEG_DATA.")
    if len(matches) > 1:
        raise MedSegError(f"Dataset id {text} is ambiguous in {root}: {', '.join(p.name for p in matches)}. "
                          "Give the full folder name.")
    return matches[0]


def preprocessed_folder(raw_folder: Path) -> Path:
    """Where fingerprint, plans and preprocessed cases of this dataset go."""
    return data_folder("preprocessed") / Path(raw_folder).name
