"""Creating a raw dataset folder in nnU-Net's layout and writing its ``dataset.json``."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import MedSegError
from ..fileio import write_json
from .dataset_json import check_dataset_json
from .paths import dataset_folder_name


def create_dataset_folder(raw_root: str | os.PathLike, dataset_id: int, name: str) -> Path:
    """``<raw_root>/DatasetNNN_Name`` with ``imagesTr``/``labelsTr``; refuses to overwrite an existing id."""
    raw_root = Path(raw_root)
    if raw_root.is_dir():
        taken = [p.name for p in raw_root.glob(f"Dataset{int(dataset_id):03d}_*")]
        if taken:
            raise MedSegError(f"Dataset id {dataset_id} is already used by {taken[0]} in {raw_root}; "
                              "choose another id or remove that folder.")
    folder = raw_root / dataset_folder_name(dataset_id, name)
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    return folder


def write_dataset_json(folder: Path, channel_names: dict, labels: dict, num_training: int,
                       regions_class_order: list[int] | None = None, file_ending: str = ".nii.gz",
                       extra: dict | None = None) -> None:
    meta = {"channel_names": channel_names, "labels": labels, "numTraining": num_training, "file_ending": file_ending}
    if regions_class_order is not None:
        meta["regions_class_order"] = regions_class_order
    meta.update(extra or {})
    problems = check_dataset_json(meta)
    if problems:
        raise MedSegError("Cannot write dataset.json: " + "; ".join(problems) + ".")
    write_json(folder / "dataset.json", meta)
