"""A raw dataset in nnU-Net's layout: ``dataset.json`` plus ``imagesTr``/``labelsTr`` (and ``imagesTs``).

Labels are plain (``"liver": 1``) or regions (``"whole_tumor": [1, 2, 3]``), the latter needing
``regions_class_order``; ``"ignore"`` names a label that is not trained on.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import MedSegError
from ..fileio import read_json
from ..images import read_case, read_image

CHANNEL_SUFFIX_DIGITS = 4


@dataclass
class Case:
    """One training case: its channel files in order and its label file."""

    name: str
    images: list[Path]
    label: Path


@dataclass
class RawDataset:
    folder: Path
    meta: dict  # the dataset.json content

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def channel_names(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in channel_names(self.meta).items()}

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def file_ending(self) -> str:
        return self.meta["file_ending"]

    @property
    def labels(self) -> dict:
        return self.meta["labels"]

    @property
    def is_region_based(self) -> bool:
        return any(isinstance(v, (list, tuple)) and len(v) > 1 for k, v in self.labels.items() if k != "ignore")

    @property
    def ignore_label(self) -> int | None:
        value = self.labels.get("ignore")
        return int(value) if value is not None else None

    def label_values(self) -> set[int]:
        """Every integer a label file may contain (background, classes, ignore)."""
        values: set[int] = set()
        for value in self.labels.values():
            values.update(int(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
        return values

    def foreground_classes(self) -> list:
        """What class locations are collected for: labels (ints) or regions (tuples), background excluded."""
        out = []
        for key, value in self.labels.items():
            if key == "ignore":
                continue
            members = tuple(int(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
            if members == (0,):
                continue
            out.append(members if self.is_region_based else members[0])
        return out

    def training_cases(self) -> list[Case]:
        """Training cases from ``dataset.json``'s ``dataset`` mapping or from ``imagesTr``/``labelsTr``."""
        if "dataset" in self.meta:
            cases = []
            for name, entry in self.meta["dataset"].items():
                cases.append(Case(name, [self._resolve(p) for p in entry["images"]], self._resolve(entry["label"])))
            return sorted(cases, key=lambda c: c.name)
        return [Case(name, files, self.folder / "labelsTr" / f"{name}{self.file_ending}")
                for name, files in scan_image_folder(self.folder / "imagesTr", self.file_ending).items()]

    def _resolve(self, path: str) -> Path:
        expanded = Path(os.path.expandvars(path))
        return expanded if expanded.is_absolute() else (self.folder / expanded).resolve()


def channel_names(meta: dict) -> dict:
    """dataset.json's channels by index (nnU-Net v1 called them ``modality``)."""
    names = meta.get("channel_names", meta.get("modality"))
    if not isinstance(names, dict):
        raise MedSegError("dataset.json has no 'channel_names' (e.g. {\"0\": \"CT\"}). Fix dataset.json (see "
                          "docs/training.md) and run again.")
    return names


def scan_image_folder(folder: Path, file_ending: str) -> dict[str, list[Path]]:
    """Group ``CASE_XXXX<ending>`` files by case, channel files in order (gaps kept visible as missing paths)."""
    pattern = re.compile(rf"^(?P<case>.+)_(?P<channel>\d{{{CHANNEL_SUFFIX_DIGITS}}}){re.escape(file_ending)}$")
    grouped: dict[str, dict[int, Path]] = {}
    if not folder.is_dir():
        return {}
    for path in sorted(folder.iterdir()):
        match = pattern.match(path.name)
        if match:
            grouped.setdefault(match["case"], {})[int(match["channel"])] = path
    result = {}
    for case, channels in sorted(grouped.items()):
        count = max(channels) + 1
        result[case] = [channels.get(i, folder / f"{case}_{i:04d}{file_ending}") for i in range(count)]
    return result


def load_dataset(folder: str | os.PathLike) -> RawDataset:
    """Read and sanity-check ``dataset.json``; problems raise one clear error."""
    folder = Path(folder)
    meta = read_json(folder / "dataset.json")
    problems = check_dataset_json(meta)
    if problems:
        raise MedSegError(f"{folder / 'dataset.json'}: " + "; ".join(problems) +
                          ". Fix dataset.json (see docs/training.md) and run again.")
    return RawDataset(folder, meta)


def check_dataset_json(meta: dict) -> list[str]:
    """Every problem with the structure of a dataset.json (an empty list if it is fine)."""
    problems = []
    if not isinstance(meta, dict):
        return ["it is not a JSON object"]
    channels = meta.get("channel_names", meta.get("modality"))
    if not isinstance(channels, dict) or not channels:
        problems.append("'channel_names' is missing or empty (e.g. {\"0\": \"CT\"})")
    elif sorted(int(k) for k in channels if str(k).isdigit()) != list(range(len(channels))):
        problems.append(f"'channel_names' keys must be 0..{len(channels) - 1}; got {list(channels)}")
    labels = meta.get("labels")
    if not isinstance(labels, dict) or not labels:
        problems.append("'labels' is missing or empty (e.g. {\"background\": 0, \"tumor\": 1})")
    else:
        problems += _check_labels(labels, meta.get("regions_class_order"))
    if not isinstance(meta.get("numTraining"), int):
        problems.append("'numTraining' (the number of training cases) is missing or not an integer")
    if not isinstance(meta.get("file_ending"), str) or not meta.get("file_ending", "").startswith("."):
        problems.append("'file_ending' is missing (e.g. \".nii.gz\")")
    return problems


def _check_labels(labels: dict, regions_class_order) -> list[str]:
    problems = []
    values = {k: (v if isinstance(v, (list, tuple)) else [v]) for k, v in labels.items()}
    for key, members in values.items():
        if not members or not all(isinstance(m, int) and not isinstance(m, bool) for m in members):
            problems.append(f"label {key!r} must be an integer or a list of integers; got {labels[key]!r}")
    if problems:
        return problems
    if values.get("background") != [0] and not any(m == [0] for m in values.values()):
        problems.append("'labels' must map background to 0 (\"background\": 0)")
    regions = {k: v for k, v in values.items() if k != "ignore" and v != [0]}
    if any(len(v) > 1 for v in regions.values()):
        if not isinstance(regions_class_order, list) or len(regions_class_order) != len(regions):
            problems.append(f"region labels need 'regions_class_order' with one entry per region ({len(regions)})")
    else:
        plain = sorted(v[0] for k, v in values.items() if k != "ignore")
        if plain != list(range(len(plain))):
            problems.append(f"label values must be consecutive from 0; got {plain}")
        if "ignore" in values and values["ignore"][0] != max(plain) + 1:
            problems.append(f"the 'ignore' label must be the highest value ({max(plain) + 1})")
    return problems


def read_training_case(case: Case):
    """(image, label array (1, z, y, x)) of one training case, refusing a label on another grid."""
    image = read_case(case.images)
    label = read_image(case.label)
    if label.shape != image.shape:
        raise MedSegError(f"Case {case.name}: label shape {label.shape} differs from image shape {image.shape}. "
                          "Run `medseg dataset verify` for a full report.")
    return image, label.array[:1]
