"""Models run by a published tool's conventions (TotalSegmentator's), read into the one model description.

A folder (an install, or TotalSegmentator's own weights folder) is recognised by the dataset names
of the model folders it holds: a manifest entry with ``conventions`` lists them. A multi-part
model (``totalseg_total``: Dataset291-295) becomes one :class:`ConventionModel` whose parts are
ordinary :class:`ModelFolder` s, each with a table from its own label values to the combined
label map's; the pipeline runs each part as any model (inference/conventions.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MedSegError
from .conventions import Conventions, Part
from .description import ModelFolder
from .install import find_model_folders
from .manifest import Manifest, ModelEntry, load_manifest
from .model_folder import open_model_folder


@dataclass
class ConventionModel:
    """A model (one or several parts) and the conventions it is run by."""

    entry: ModelEntry
    root: Path
    parts: list[ModelFolder]
    tables: list[np.ndarray]      # per part: its label value -> the combined label value (0 stays 0)
    others: dict[str, Path]       # other convention models' folders found beside it (e.g. the crop model)

    @property
    def conventions(self) -> Conventions:
        assert self.entry.conventions is not None, "a ConventionModel's entry has conventions"
        return self.entry.conventions

    @property
    def label_values(self) -> dict[str, int]:
        """Structure name -> combined label value (background left out)."""
        return {k: int(v) for k, v in self.entry.labels.items() if v != 0}

    def description(self) -> ModelFolder:
        """The combined model as one ModelFolder (labels, channels), for writers and previews."""
        first = self.parts[0]
        dataset = {"channel_names": {str(i): c for i, c in enumerate(self.entry.channel_names)},
                   "labels": {"background": 0, **self.label_values}}
        return ModelFolder(self.root, dataset, first.plans, first.configuration_name, first.folds)


def dataset_folders(path: Path) -> dict[str, Path]:
    """Dataset name (DatasetNNN_...) -> its model folder, for every model folder at or under ``path``."""
    path = Path(path)
    folders = find_model_folders(path) if path.is_dir() else []
    return {folder.parent.name if folder.parent != folder else folder.name: folder for folder in folders}


def find_convention_entry(path: Path, manifest: Manifest) -> ModelEntry | None:
    """The manifest entry whose conventions name the model folders in ``path``; None for any other model.

    Refuses a folder that holds only some parts of a multi-part model, or parts of two releases; one part
    folder on its own is an ordinary nnU-Net model (run as nnU-Net would).
    """
    found = dataset_folders(path)
    entries = [e for e in manifest.models.values() if e.conventions is not None]
    touched = [e for e in entries if any(d in found for d in e.conventions.datasets)]  # type: ignore[union-attr]
    complete = [e for e in touched if all(d in found for d in e.conventions.datasets)]  # type: ignore[union-attr]
    partial = [e for e in touched if e not in complete and len(e.conventions.datasets) > 1]  # type: ignore[union-attr]
    if partial and len(found) == 1 and not complete:
        return None
    if partial:
        raise MedSegError(_partial_message(path, partial, complete, found))
    if not complete:
        return None
    best = max(len(e.conventions.datasets) for e in complete)  # type: ignore[union-attr]
    chosen = [e for e in complete if len(e.conventions.datasets) == best]  # type: ignore[union-attr]
    crops = {c.model for e in chosen if e.conventions for c in (e.conventions.crop, e.conventions.roi_crop) if c}
    if len(chosen) > 1:  # a model beside its crop model (as in TotalSegmentator's weights folder): the model
        chosen = [e for e in chosen if e.name not in crops] or chosen
    if len(chosen) > 1:
        raise MedSegError(f"{path} holds several models ({', '.join(e.name for e in chosen)}); "
                          "give the folder of the one to run, or install it under its name.")
    return chosen[0]


def _partial_message(path: Path, partial: list[ModelEntry], complete: list[ModelEntry], found: dict) -> str:
    releases = {e.conventions.release for e in partial + complete if e.conventions is not None}
    entry = partial[0]
    assert entry.conventions is not None
    if len(releases) > 1:
        listing = "; ".join(f"{', '.join(_short(d) for d in e.conventions.datasets if d in found)} from "
                            f"{e.conventions.release} ({e.name})" for e in partial + complete if e.conventions)
        return (f"{path} mixes parts of different TotalSegmentator versions: {listing}. A multi-part model needs "
                f"every part from one release; fetch it again (`medseg models fetch {entry.name} --force`).")
    missing = [d for d in entry.conventions.datasets if d not in found]
    return (f"Model {entry.name} needs {len(entry.conventions.datasets)} part models but {path} lacks "
            f"{len(missing)}: {', '.join(missing)}. Fetch it again (`medseg models fetch {entry.name} --force`) "
            "or add the missing part folder(s).")


def _short(dataset: str) -> str:
    return dataset.split("_", 1)[0]


def open_convention_model(path: Path, entry: ModelEntry, configuration: str | None = None) -> ConventionModel:
    """The parts of ``entry`` found under ``path``, opened and checked against the manifest's class maps."""
    conventions = entry.conventions
    assert conventions is not None, "open_convention_model needs an entry with conventions"
    found = dataset_folders(path)
    parts, tables = [], []
    for index, dataset in enumerate(conventions.datasets):
        folder = open_model_folder(found[dataset], configuration or entry.configuration)
        part = conventions.parts[index] if conventions.parts else None
        tables.append(_label_table(folder, part, entry))
        parts.append(folder)
    others = {d: f for d, f in found.items() if d not in conventions.datasets}
    return ConventionModel(entry, Path(path), parts, tables, others)


def _label_table(folder: ModelFolder, part: Part | None, entry: ModelEntry) -> np.ndarray:
    """Part label value -> combined value; a part whose labels differ from its release's is refused."""
    own = folder.labels.names
    combined = {k: int(v) for k, v in entry.labels.items()}
    expected = part.labels if part is not None else {v: k for k, v in combined.items() if v != 0}
    assert entry.conventions is not None
    auxiliary = entry.conventions.auxiliary  # predicted, then cleared (TotalSegmentator's remove_auxiliary_labels)
    expected = {**expected, **auxiliary}
    if own != expected:
        differ = sorted(set(own.items()) ^ set(expected.items()))[:3]
        raise MedSegError(f"Model folder {folder.path} does not have the labels of {folder.path.parent.name} in "
                          f"TotalSegmentator {entry.conventions.release} (e.g. {differ}); it comes from another "
                          f"TotalSegmentator version. Fetch {entry.name} again (`medseg models fetch {entry.name} "
                          "--force`).")
    table = np.zeros(max(own, default=0) + 1, dtype=np.int32)
    for value, name in own.items():
        table[value] = 0 if value in auxiliary else combined[name]
    return table


def open_any_model(path: Path, configuration: str | None = None) -> ModelFolder:
    """The description of any model: a convention model's combined labels and channels, else its folder's."""
    entry = find_convention_entry(Path(path), load_manifest())
    if entry is None:
        return open_model_folder(path, configuration)
    return open_convention_model(Path(path), entry, configuration).description()
