"""An nnU-Net v2 model folder: dataset.json, plans.json and fold_k/checkpoint_*.pth (v1 folders: v1_folder.py)."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import MedSegError
from ..fileio import read_json_object
from ..network.bounds import check_architecture
from .archive import extract_zip_to_cache
from .description import _FOLD_DIR, ModelFolder, resolve_configuration
from .install_record import recorded_output_values
from .v1_folder import holds_v1_model, open_v1_folder

__all__ = ["ModelFolder", "open_model_folder", "resolve_configuration"]


def open_model_folder(path: str | os.PathLike, configuration: str | None = None) -> ModelFolder:
    """Open a model folder (or a folder/extracted zip holding one or more of them)."""
    model = _open(Path(path), configuration)
    model.output_label_values = recorded_output_values(model.path)  # what its install recorded, if anything
    return model


def _open(path: Path, configuration: str | None) -> ModelFolder:
    path = Path(path)
    if not path.exists():
        raise MedSegError(f"Model not found: {path}")
    if path.is_file() and path.suffix == ".zip":
        path = extract_zip_to_cache(path)
    if not _holds_v2_model(path) and holds_v1_model(path):
        return open_v1_folder(path, configuration)
    folder = _find_model_dir(path, configuration)
    dataset_json = read_json_object(folder / "dataset.json")
    plans = read_json_object(folder / "plans.json")
    folds = sorted((m.group(1) for p in folder.iterdir() if p.is_dir() and (m := _FOLD_DIR.match(p.name))),
                   key=lambda f: (f == "all", int(f) if f != "all" else 0))
    name = configuration or _configuration_from_name(folder.name) or _only_configuration(plans, folder)
    model = ModelFolder(folder, dataset_json, plans, name, folds)
    if "architecture" in model.configuration:  # (a model listed or installed only may lack one)
        check_architecture(model.configuration, model.num_input_channels, model.labels.num_outputs)
    return model


def _holds_v2_model(path: Path) -> bool:
    return path.is_dir() and ((path / "plans.json").is_file() or any(path.rglob("plans.json")))


def _find_model_dir(path: Path, configuration: str | None) -> Path:
    if (path / "plans.json").is_file() and (path / "dataset.json").is_file():
        return path
    candidates = sorted({p.parent for p in path.rglob("plans.json") if (p.parent / "dataset.json").is_file()})
    if configuration:
        candidates = [c for c in candidates if _configuration_from_name(c.name) == configuration] or candidates
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise MedSegError(f"{path} is not an nnU-Net model folder: no dataset.json + plans.json found in it.")
    listing = ", ".join(str(c.relative_to(path)) for c in candidates)
    raise MedSegError(f"{path} holds several models ({listing}); choose one with its folder or a configuration.")


def _configuration_from_name(folder_name: str) -> str | None:
    parts = folder_name.split("__")
    return parts[2] if len(parts) == 3 else None


def _only_configuration(plans: dict, folder: Path) -> str:
    found = plans.get("configurations")
    configs = [str(c) for c in found] if isinstance(found, dict) else []
    if len(configs) == 1:
        return configs[0]
    if "3d_fullres" in configs:
        return "3d_fullres"
    raise MedSegError(f"Cannot tell which configuration model {folder} uses; name it (one of {', '.join(configs)}).")
