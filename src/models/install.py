"""Fetch, install, remove and verify models in the cache.

An install is built in a hidden staging folder beside its final place, checked (nnU-Net
layout present, every checkpoint loads without running pickled code), recorded with the
SHA-256 of every file, and only then renamed into place. A failure at any step deletes the
staging folder: users see the old install, no install, or the complete new one, never a
half-written folder. A per-model lock serialises processes working on the same model.
"""
from __future__ import annotations

import datetime
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

from ..errors import MedSegError
from ..fileio import read_json, write_json
from . import cache, v1_install
from .archive import DISK_FULL_ERRNOS, safe_extract_zip
from .download import Progress, download_file, sha256_of
from .embedded import embedded_path
from .install_record import output_values_entry
from .manifest import Manifest, ModelEntry, load_manifest

Notify = Callable[[str], None]
RECORDED_HASHES = "recorded_sha256.json"


def _say(notify: Notify | None, message: str) -> None:
    if notify:
        notify(message)


def get_entry(name: str, manifest: Manifest | None = None) -> ModelEntry:
    manifest = manifest or load_manifest()
    entry = manifest.get(name)
    if entry is None:
        known = ", ".join(manifest.names()) or "none"
        raise MedSegError(f"Unknown model {name!r}: it is not in the models manifest (known: {known}). "
                          "Install your own with `medseg models install NAME PATH`.")
    return entry


def not_published_message(entry: ModelEntry) -> str:
    return f"No weights are published for model {entry.name!r} ({entry.task}). {entry.instructions}"


def fetch_model(name: str, *, manifest: Manifest | None = None, progress: Progress | None = None,
                notify: Notify | None = None, force: bool = False, offline: bool | None = None,
                timeout: float | None = None, retries: int | None = None) -> Path:
    """Download, verify and install the manifest model ``name``; return its installed folder."""
    entry = get_entry(name, manifest)
    if entry.source == "none":
        raise MedSegError(not_published_message(entry))
    if entry.source == "embedded":
        return embedded_path(entry)
    if cache.is_installed(name) and not force:
        return cache.installed_path(name)
    if cache.is_offline(offline):
        raise MedSegError(f"Model {name!r} is not installed and MedSeg is in offline mode ({cache.OFFLINE_ENV}). "
                          f"Fetch it once while online (`medseg models fetch {name}`), or install it from a file.")
    with cache.model_lock(name, on_wait=notify):
        if cache.is_installed(name) and not force:  # another process finished it while we waited
            return cache.installed_path(name)
        recorded = _recorded_hashes()
        downloads: list[Path] = []
        new_hashes: dict[str, dict] = {}
        try:
            for file in entry.files:
                expected = file.sha256 or recorded.get(file.url, {}).get("sha256")
                dest = cache.downloads_dir() / f"{name}--{file.local_name}"
                _say(notify, f"Downloading {file.url}")
                digest = download_file(file.url, dest, sha256=expected, size=file.size, progress=progress,
                                       timeout=timeout, retries=retries)
                downloads.append(dest)
                if expected is None:
                    new_hashes[file.url] = {"sha256": digest, "size": dest.stat().st_size, "model": name}
            path = _install_sources(name, downloads, force=force, origin={"manifest_model": name,
                                                                           "urls": [f.url for f in entry.files]},
                                    output_values=entry.output_label_values)
        finally:
            for dest in downloads:
                dest.unlink(missing_ok=True)
        for url, info in new_hashes.items():
            _record_hash(url, info)
            _say(notify, f"Note: no SHA-256 is published for {url}. Recorded {info['sha256']} on this first "
                         f"download (in {cache.cache_dir() / RECORDED_HASHES}); later downloads must match it.")
    return path


def install_model(name: str, source: str | os.PathLike, *, force: bool = False, notify: Notify | None = None) -> Path:
    """Install a local nnU-Net model zip or folder under ``name``; return its installed folder."""
    cache.check_model_name(name)
    source = Path(source).expanduser()
    if not source.exists():
        raise MedSegError(f"Cannot install {name!r}: {source} does not exist.")
    if not (source.is_dir() or zipfile.is_zipfile(source)):
        raise MedSegError(f"Cannot install {name!r}: {source} is neither a folder nor a zip archive.")
    values = _manifest_output_values(name)
    with cache.model_lock(name, on_wait=notify):
        path = _install_sources(name, [source], force=force, origin={"path": str(source.resolve())},
                                output_values=values)
    if values:
        pairs = ", ".join(f"{k} -> {v}" for k, v in sorted(values.items()))
        _say(notify, f"Installed under the manifest's name {name!r}: its predictions write that model's label values "
                     f"({pairs}); --training-label-values (ChimeraX: trainingLabelValues true) keeps the model's.")
    return path


def _manifest_output_values(name: str) -> dict[int, int] | None:
    """A local install under a downloadable manifest model's name (its published zip, fetched by hand) is that
    model: it keeps the label values the entry states (BraTS's own)."""
    entry = load_manifest().get(name)
    return entry.output_label_values if entry is not None and entry.source == "download" else None


def remove_model(name: str, notify: Notify | None = None) -> None:
    target = cache.installed_path(name)
    with cache.model_lock(name, on_wait=notify):
        for part in cache.downloads_dir().glob(f"{name}--*"):
            part.unlink(missing_ok=True)
        if not target.exists():
            raise MedSegError(f"Model {name!r} is not installed "
                              f"(installed: {', '.join(cache.installed_names()) or 'none'}).")
        trash = Path(tempfile.mkdtemp(prefix=f".{name}.trash-", dir=target.parent))
        os.replace(target, trash / name)  # disappears at once; deleting the files may take a while
        shutil.rmtree(trash, ignore_errors=True)


def verify_model(name: str) -> list[str]:
    """Problems with the installed model ``name`` (empty when every file and checkpoint is sound)."""
    root = cache.installed_path(name)
    record_path = root / cache.INSTALL_RECORD
    if not record_path.is_file():
        return [f"{name}: not installed"]
    record = read_json(record_path)
    problems = []
    expected: dict[str, str] = record.get("files", {})
    for rel, digest in expected.items():
        path = root / rel
        if not path.is_file():
            problems.append(f"{name}: missing file {rel}")
        elif sha256_of(path) != digest:
            problems.append(f"{name}: {rel} has changed since it was installed (SHA-256 mismatch)")
    for path in _files_under(root):
        rel = path.relative_to(root).as_posix()
        if rel != cache.INSTALL_RECORD and rel not in expected:
            problems.append(f"{name}: unexpected file {rel}")
    if not problems:
        try:
            check_model_tree(root)
        except MedSegError as exc:
            problems.append(f"{name}: {exc}")
    return problems


# --- building an install -------------------------------------------------------------------

def _install_sources(name: str, sources: list[Path], *, force: bool, origin: dict,
                     output_values: dict[int, int] | None = None) -> Path:
    target = cache.installed_path(name)
    if target.exists() and not force:
        raise MedSegError(f"Model {name!r} is already installed in {target}. Remove it first "
                          f"(`medseg models remove {name}`) or pass --force to replace it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(name, target.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.install-", dir=target.parent))
    try:
        for index, source in enumerate(sources):
            _add_source(source, staging, index)
        folders = check_model_tree(staging)
        files = {p.relative_to(staging).as_posix(): sha256_of(p) for p in _files_under(staging)}
        write_json(staging / cache.INSTALL_RECORD, {
            "name": name, "installed": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "origin": origin, "model_folders": [f.relative_to(staging).as_posix() for f in folders], "files": files,
            **output_values_entry(output_values)})
        _commit(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def remove_stale_staging(name: str, folder: Path) -> list[Path]:
    """Delete what an interrupted (killed) install, removal or unpack of ``name`` left behind.

    Called with the model's lock held, so no live process is using these folders.
    """
    stale = [p for kind in ("install", "trash", "extract") for p in folder.glob(f".{name}.{kind}-*")]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def _add_source(source: Path, staging: Path, index: int) -> None:
    if source.is_dir():
        _copy_folder(source, staging / source.resolve().name)
        return
    unpacked = staging / f".unpack-{index}"
    safe_extract_zip(source, unpacked)
    for child in unpacked.iterdir():  # merge the archive's top level into the install
        if (staging / child.name).exists():
            raise MedSegError(f"Two files of this model both contain {child.name}; cannot merge them.")
        os.replace(child, staging / child.name)
    unpacked.rmdir()


def _copy_folder(source: Path, dest: Path) -> None:
    """Copy a model folder, refusing links (they could point anywhere) and special files."""
    for dirpath, dirnames, filenames in os.walk(source):
        here = Path(dirpath)
        for entry in dirnames + filenames:
            mode = os.lstat(here / entry).st_mode
            if stat.S_ISLNK(mode):
                raise MedSegError(f"Refusing to install {source}: {here / entry} is a symbolic link.")
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise MedSegError(f"Refusing to install {source}: {here / entry} is not a regular file.")
    try:
        shutil.copytree(source, dest)
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS or "No space left" in str(exc):
            raise MedSegError(f"No space left on the disk while installing {source}; nothing was installed.") from None
        raise


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def find_model_folders(root: Path) -> list[Path]:
    """Every folder under ``root`` holding an nnU-Net model (dataset.json + plans.json)."""
    return sorted({p.parent for p in root.rglob("plans.json") if (p.parent / "dataset.json").is_file()})


def check_model_tree(root: Path) -> list[Path]:
    """Check an nnU-Net model tree: layout, JSON files, and that every checkpoint loads safely."""

    folders = find_model_folders(root)
    v1_folders = v1_install.find_v1_model_folders(root)
    if folders and v1_folders:
        raise MedSegError(f"{root.name} mixes nnU-Net v1 models ({v1_folders[0].relative_to(root)}) and v2 models "
                          f"({folders[0].relative_to(root)}); install them as separate models.")
    if v1_folders or v1_install.has_stray_v1_checkpoints(root):
        return v1_install.check_v1_tree(root, v1_folders)
    if not folders:
        raise MedSegError(f"{root.name} is not an nnU-Net model: no folder with dataset.json and plans.json "
                          "(expected <Trainer>__<Plans>__<configuration>/ as nnU-Net exports it).")
    for folder in folders:
        for json_name in ("dataset.json", "plans.json"):
            if not isinstance(read_json(folder / json_name), dict):
                raise MedSegError(f"{folder.name}/{json_name} is not a JSON object.")
        checkpoints = sorted(folder.glob("fold_*/*.pth"))
        if not checkpoints:
            raise MedSegError(f"Model folder {folder.name} has no fold_*/checkpoint_*.pth file.")
        from .checkpoint import load_checkpoint  # torch: only when a model is checked, not at `medseg` start-up
        for checkpoint in checkpoints:
            load_checkpoint(checkpoint)  # raises MedSegError for a pickle that would run code
    return folders


def _commit(staging: Path, target: Path) -> None:
    """Swap the finished staging folder into place; an old install is replaced as a whole."""
    trash = None
    if target.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.trash-", dir=target.parent))
        os.replace(target, trash / target.name)
    os.replace(staging, target)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


# --- hashes recorded on first download ------------------------------------------------------

def _recorded_hashes() -> dict:
    path = cache.cache_dir() / RECORDED_HASHES
    return read_json(path) if path.is_file() else {}


def _record_hash(url: str, info: dict) -> None:
    with cache.model_lock("recorded-hashes"):
        hashes = _recorded_hashes()
        hashes[url] = {**info, "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        write_json(cache.cache_dir() / RECORDED_HASHES, hashes)
