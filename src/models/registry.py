"""Turn what a user typed (a model name, a folder, a zip) into an nnU-Net model folder.

Lookup order for a name: models installed in the cache, models embedded in the package,
then the manifest (fetched on first use unless offline). Every dead end says what to do.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..cli_parser import did_you_mean
from ..datasets.paths import DATASET_FOLDER, data_folder
from ..errors import MedSegError
from ..progress import ProgressBar
from . import cache
from .archive import extract_zip_to_cache
from .download import Progress
from .embedded import PACKAGE_DIR as _PACKAGE_DIR
from .embedded import embedded_path, verify_embedded
from .install import fetch_model, find_model_folders, get_entry, not_published_message, verify_model
from .manifest import Manifest, load_manifest
from .v1_install import find_v1_model_folders


def verify(name: str) -> list[str]:
    """Problems with an installed model, or with an embedded one that no install shadows."""
    entry = load_manifest().get(name)
    if not cache.is_installed(name) and entry is not None and entry.source == "embedded":
        return [f"{name}: {p}" for p in verify_embedded(entry)]
    return verify_model(name)


def verifiable_names() -> list[str]:
    """Every installed model, then the embedded ones not shadowed by an install."""
    installed = cache.installed_names()
    embedded = [e.name for e in load_manifest().models.values() if e.source == "embedded"]
    return installed + [n for n in embedded if n not in installed]


def resolve_model(name_or_path: str, offline: bool | None = None, *, manifest: Manifest | None = None,
                  progress: Progress | None = None, notify: Callable[[str], None] | None = None) -> Path:
    """The nnU-Net model folder for a path or a model name.

    A folder is returned as is; a ``.zip`` is unpacked safely into the cache (once) and the
    unpacked folder returned; a name is looked up among installed models, embedded models and
    the manifest. A manifest model that is not installed is fetched now unless ``offline``
    (or ``MEDSEG_OFFLINE=1``). Where a tree holds exactly one model folder, that folder is
    returned; otherwise its root (the caller then picks a configuration).
    """
    text = str(name_or_path).strip()
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        if path.suffix.lower() != ".zip":
            raise MedSegError(f"{path} is a file but not a model zip; give a model folder, a .zip or a model name.")
        return _single_model(extract_zip_to_cache(path))
    if _looks_like_path(text):
        raise MedSegError(f"Model not found: {path} does not exist.")
    return _resolve_name(text, offline, manifest, progress, notify)


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.lower().endswith(".zip") or text.startswith("~")


def _resolve_name(name: str, offline, manifest, progress, notify) -> Path:
    try:
        cache.check_model_name(name)
    except MedSegError:
        raise MedSegError(f"Model not found: {name!r} is neither an existing folder or zip nor a model name.") from None
    if cache.is_installed(name):
        return _single_model(cache.installed_path(name))
    manifest = manifest or load_manifest()
    entry = manifest.get(name)
    if entry is None:
        trained = trained_models(name)
        if trained is not None:
            return trained
        installed = ", ".join(cache.installed_names()) or "none"
        hint = did_you_mean(name, [*cache.installed_names(), *manifest.names()])
        raise MedSegError(f"Unknown model {name!r}: not a folder or zip, not installed (installed: {installed}) "
                          f"and not in the manifest (available: {', '.join(manifest.names())}).{hint} "
                          "See `medseg models list`.")
    if entry.source == "embedded":
        return _single_model(embedded_path(entry))
    if entry.source == "none":
        raise MedSegError(not_published_message(entry))
    if cache.is_offline(offline):
        why = "MedSeg is in offline mode" if cache.is_offline() else "this command does not download"
        raise MedSegError(f"Model {name!r} is not installed ({why}). Fetch it once while online: `medseg models "
                          f"fetch {name}` (in ChimeraX: `segment fetch {name}`).")
    if progress is None and sys.stderr is not None and sys.stderr.isatty():
        progress = text_progress(f"Fetching {name}")
    if notify is None:  # e.g. "no SHA-256 published; recorded on first download" must reach the user
        notify = lambda message: print(message, file=sys.stderr)  # noqa: E731
    return _single_model(fetch_model(name, manifest=manifest, progress=progress, notify=notify))


def format_size(size: int | None) -> str:
    """MB, or 'unknown' for a download whose size its publisher does not state (recorded on first fetch)."""
    return "unknown" if size is None else f"{size / 1e6:.1f} MB" if size < 1e7 else f"{size / 1e6:.0f} MB"


def trained_models(name: str) -> Path | None:
    """A dataset id (``990``) or name (``Dataset990_X``), as ``medseg plan``/``train`` take it: the one
    model trained for it in the results folder. None when ``name`` is not a dataset's."""
    results = data_folder("results")
    if name.isdigit():
        datasets = sorted(results.glob(f"Dataset{int(name):03d}_*"))
    elif DATASET_FOLDER.match(name):
        datasets = [results / name]
    else:
        return None
    models = sorted(m for d in datasets if d.is_dir() for m in d.iterdir() if (m / "plans.json").is_file())
    if len(models) == 1:
        return models[0]
    if not models:
        raise MedSegError(f"No trained model for dataset {name} in {results} (train one with `medseg train {name}`).")
    listing = ", ".join(str(m.relative_to(results)) for m in models)
    raise MedSegError(f"Dataset {name} has several trained models ({listing}); give the one to use as a folder.")


def _single_model(root: Path) -> Path:
    folders = find_model_folders(root) or find_v1_model_folders(root)
    return folders[0] if len(folders) == 1 else root


# --- listing ---------------------------------------------------------------------------------

@dataclass
class ModelStatus:
    name: str
    status: str          # installed | available | embedded | not published | installed (local)
    task: str
    size: int | None
    path: Path | None


def model_statuses(manifest: Manifest | None = None) -> list[ModelStatus]:
    """Every manifest model with its state, then models installed from local files."""
    manifest = manifest or load_manifest()
    rows = []
    for entry in manifest.models.values():
        if cache.is_installed(entry.name):
            rows.append(ModelStatus(entry.name, "installed", entry.task, entry.total_size,
                                    cache.installed_path(entry.name)))
        elif entry.source == "embedded":
            rows.append(ModelStatus(entry.name, "embedded", entry.task, entry.total_size, _PACKAGE_DIR / entry.path))
        elif entry.source == "none":
            rows.append(ModelStatus(entry.name, "not published", entry.task, None, None))
        else:
            rows.append(ModelStatus(entry.name, "available", entry.task, entry.total_size, None))
    for name in cache.installed_names():
        if name not in manifest.models:
            path = cache.installed_path(name)
            rows.append(ModelStatus(name, "installed (local)", "", _folder_size(path), path))
    return rows


def _folder_size(path: Path) -> int:
    """Bytes of the files under ``path`` (links not followed)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# --- progress on the command line -------------------------------------------------------------

def text_progress(label: str) -> Progress:
    """A ``progress(done, total)`` callback drawing the project's text bar on stderr."""

    bar = ProgressBar(label, stream=sys.stderr)  # the current stderr, not the one at import time
    finished: list[bool] = []

    def report(done: int, total: int | None) -> None:
        if finished:
            return
        if total:
            bar.update(done / total, f"{done / 1e6:.1f}/{total / 1e6:.1f} MB")
            if done >= total:
                bar.close()
                finished.append(True)
        else:
            bar.update(0.0, f"{done / 1e6:.1f} MB")
    return report


__all__ = ["resolve_model", "model_statuses", "extract_zip_to_cache", "text_progress", "get_entry", "embedded_path"]
