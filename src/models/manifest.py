"""The models manifest: which models exist, what they segment, and where their files come from.

The schema is documented in ``docs/models.md``; ``load_manifest`` validates every entry and
reports the first problem with its model name and field, so a broken manifest never turns
into a confusing failure halfway through a download.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MedSegError
from .cache import check_model_name
from .conventions import Conventions, parse_conventions

SCHEMA_VERSION = 1
MANIFEST_ENV = "MEDSEG_MANIFEST"
SOURCES = ("embedded", "download", "none")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REQUIRED = ("name", "task", "modality", "channel_names", "labels", "configuration", "folds",
             "licence", "citation", "source", "files")


@dataclass(frozen=True)
class ModelFile:
    """One file to download (an nnU-Net model zip, or a single file placed in the model folder), or,
    for an embedded model, one file of its folder (``path``) with the digest it must have."""

    url: str = ""
    sha256: str | None = None     # None: not published; recorded on first download
    size: int | None = None       # bytes; None: unknown until the server says
    filename: str = ""            # name on disk; defaults to the URL's last path component
    path: str = ""                # embedded models: the file's path inside the model folder

    @property
    def local_name(self) -> str:
        return self.filename or self.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    task: str
    modality: str
    channel_names: list[str]
    labels: dict[str, Any]          # name -> value, or name -> [values] for regions
    configuration: str
    folds: list[str]
    licence: str
    citation: str
    source: str                     # "embedded" | "download" | "none"
    files: list[ModelFile] = field(default_factory=list)
    trainer: str = ""
    plans: str = ""
    regions_class_order: list[int] | None = None
    instructions: str = ""          # how to get the model when nothing can be downloaded
    path: str = ""                  # for embedded models: folder relative to the package
    homepage: str = ""
    # the values a user of this model's field expects, by the value the model writes (BraTS: 1 -> 2, 2 -> 1,
    # 3 -> 4); applied on request (inference/label_values.py), e.g. to hand labels to BraTS tools
    output_label_values: dict[int, int] | None = None
    # how to run it where that differs from plain nnU-Net (TotalSegmentator's models; models/conventions.py)
    conventions: Conventions | None = None

    @property
    def is_region_based(self) -> bool:
        return any(isinstance(v, list) for v in self.labels.values())

    @property
    def total_size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[arg-type]

    def label_names(self) -> list[str]:
        return [name for name, value in self.labels.items() if value not in (0, [0])]


@dataclass
class Manifest:
    path: Path
    models: dict[str, ModelEntry]

    def get(self, name: str) -> ModelEntry | None:
        return self.models.get(name)

    def names(self) -> list[str]:
        return list(self.models)


def default_manifest_path() -> Path:
    """``MEDSEG_MANIFEST`` if set, else the manifest shipped inside the package."""
    override = os.environ.get(MANIFEST_ENV)
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parent.parent / "models_manifest.json"


def load_manifest(path: str | os.PathLike | None = None) -> Manifest:
    path = Path(path) if path is not None else default_manifest_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MedSegError(f"Models manifest not found: {path}. Reinstall MedSeg or unset {MANIFEST_ENV}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MedSegError(f"Models manifest {path} is not valid JSON ({exc}).") from None
    return Manifest(path, parse_manifest(data, str(path)))


def parse_manifest(data: Any, where: str = "manifest") -> dict[str, ModelEntry]:
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise MedSegError(f"{where}: expected an object with a 'models' list.")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise MedSegError(f"{where}: schema_version is {data.get('schema_version')!r}; this MedSeg reads version "
                          f"{SCHEMA_VERSION}. Update MedSeg or fix the manifest.")
    models: dict[str, ModelEntry] = {}
    for index, raw in enumerate(data["models"]):
        entry = parse_entry(raw, f"{where}: model #{index + 1}")
        if entry.name in models:
            raise MedSegError(f"{where}: model name {entry.name!r} appears twice.")
        models[entry.name] = entry
    return models


def parse_entry(raw: Any, where: str) -> ModelEntry:
    if not isinstance(raw, dict):
        raise MedSegError(f"{where}: each model must be a JSON object.")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise MedSegError(f"{where} ({raw.get('name', '?')}): missing field(s) {', '.join(missing)}.")
    name = raw["name"]
    where = f"{where} ({name})"
    try:
        check_model_name(name if isinstance(name, str) else "")
    except MedSegError as exc:
        raise MedSegError(f"{where}: {exc}") from None
    for key in ("task", "modality", "configuration", "licence", "citation"):
        _require(isinstance(raw[key], str) and raw[key].strip(), where, f"'{key}' must be a non-empty string")
    _require(raw["source"] in SOURCES, where, f"'source' must be one of {', '.join(SOURCES)}")
    _require(_is_str_list(raw["channel_names"]) and raw["channel_names"], where,
             "'channel_names' must be a non-empty list of strings")
    _require(isinstance(raw["folds"], list) and raw["folds"] and all(_is_fold(f) for f in raw["folds"]),
             where, "'folds' must be a non-empty list of fold numbers or \"all\"")
    labels = _check_labels(raw["labels"], where)
    order = raw.get("regions_class_order")
    is_regions = any(isinstance(v, list) for v in labels.values())
    if is_regions:
        regions = [v for v in labels.values() if v not in (0, [0])]
        _require(isinstance(order, list) and len(order) == len(regions) and all(isinstance(x, int) for x in order),
                 where, "region labels need 'regions_class_order' with one integer per region")
    source = raw["source"]
    parse = _parse_embedded_file if source == "embedded" else _parse_file
    files = [parse(f, f"{where} file #{i + 1}") for i, f in enumerate(_as_list(raw["files"], where, "files"))]
    _require(source == "none" or files, where, f"a {source!r} model needs at least one file")
    _require(source != "none" or not files, where, "a model with source 'none' must list no files")
    _require(source != "embedded" or isinstance(raw.get("path"), str) and raw.get("path"), where,
             "an 'embedded' model needs 'path' (its folder inside the package)")
    _require(source != "none" or isinstance(raw.get("instructions"), str) and raw.get("instructions"), where,
             "a model with source 'none' needs 'instructions' telling users how to get one")
    for key in ("trainer", "plans", "instructions", "path", "homepage"):
        _require(isinstance(raw.get(key, ""), str), where, f"'{key}' must be a string")
    return ModelEntry(
        name=name, task=raw["task"], modality=raw["modality"], channel_names=list(raw["channel_names"]),
        labels=labels, configuration=raw["configuration"], folds=[str(f) for f in raw["folds"]],
        licence=raw["licence"], citation=raw["citation"], source=source, files=files,
        trainer=raw.get("trainer", ""), plans=raw.get("plans", ""),
        regions_class_order=list(order) if is_regions and isinstance(order, list) else None,
        instructions=raw.get("instructions", ""),
        path=raw.get("path", ""), homepage=raw.get("homepage", ""),
        output_label_values=_output_label_values(raw.get("output_label_values"), where),
        conventions=parse_conventions(raw.get("conventions"), raw.get("parts"), where))


def _output_label_values(raw: Any, where: str) -> dict[int, int] | None:
    if raw is None:
        return None
    mapping = output_values_or_none(raw)
    _require(mapping is not None, where,
             "'output_label_values' must map label values (as strings) to distinct non-negative integers")
    return mapping


def output_values_or_none(raw: Any) -> dict[int, int] | None:
    """A label value mapping from JSON (``{"1": 2, ...}``), or None when it is not one (values distinct)."""
    ok = isinstance(raw, dict) and all(str(k).isdigit() and isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                       for k, v in raw.items())
    return {int(k): int(v) for k, v in raw.items()} if ok and len(set(raw.values())) == len(raw) else None


def _parse_file(raw: Any, where: str) -> ModelFile:
    _require(isinstance(raw, dict), where, "must be an object with 'url', 'sha256', 'size'")
    url = raw.get("url")
    _require(isinstance(url, str) and re.match(r"^https?://", url or ""), where, "'url' must be an http(s) URL")
    sha = raw.get("sha256")
    _require(sha is None or (isinstance(sha, str) and _SHA256.match(sha)), where,
             "'sha256' must be 64 lower-case hex digits, or null when not published")
    size = raw.get("size")
    _require(size is None or (isinstance(size, int) and not isinstance(size, bool) and size > 0), where,
             "'size' must be a positive integer (bytes), or null when not known")
    filename = raw.get("filename", "")
    _require(isinstance(filename, str) and "/" not in filename and "\\" not in filename and filename not in ("..", "."),
             where, "'filename' must be a plain file name")
    return ModelFile(url=url, sha256=sha, size=size, filename=filename)


def _parse_embedded_file(raw: Any, where: str) -> ModelFile:
    _require(isinstance(raw, dict), where, "must be an object with 'path', 'sha256', 'size'")
    path = raw.get("path")
    _require(isinstance(path, str) and path and not path.startswith("/") and ".." not in path.split("/"), where,
             "'path' must be a relative path inside the embedded model folder")
    sha = raw.get("sha256")
    _require(isinstance(sha, str) and _SHA256.match(sha), where, "'sha256' must be 64 lower-case hex digits")
    size = raw.get("size")
    _require(isinstance(size, int) and not isinstance(size, bool) and size >= 0, where, "'size' must be bytes")
    return ModelFile(sha256=sha, size=size, path=path)


def _check_labels(labels: Any, where: str) -> dict[str, Any]:
    _require(isinstance(labels, dict) and labels, where, "'labels' must be a non-empty object name -> value")
    for key, value in labels.items():
        ok = (isinstance(value, int) and not isinstance(value, bool) and value >= 0) or (
            isinstance(value, list) and value and all(isinstance(v, int) and v >= 0 for v in value))
        _require(ok, where, f"label {key!r} must be a non-negative integer or a list of them (a region)")
    return dict(labels)


def _require(condition: Any, where: str, message: str) -> None:
    if not condition:
        raise MedSegError(f"{where}: {message}.")


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _is_fold(value: Any) -> bool:
    return value == "all" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)


def _as_list(value: Any, where: str, key: str) -> list:
    _require(isinstance(value, list), where, f"'{key}' must be a list")
    return value
