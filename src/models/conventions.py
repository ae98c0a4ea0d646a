"""How a published model wants to be run, where that differs from plain nnU-Net (manifest ``conventions``).

TotalSegmentator's models were trained on canonical (RAS) images resampled to one spacing, and
TotalSegmentator runs them with a tile step of its own, without mirroring, sometimes inside a crop
that a coarse model finds first; its ``total`` task is several part models merged into one label
map (manifest ``parts``). The manifest states these facts per model (scripts/totalseg_manifest.py
reads them from the real package); the one pipeline honours them (inference/conventions.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import MedSegError

STYLES = ("totalsegmentator",)


@dataclass(frozen=True)
class Crop:
    """Run ``model`` first and predict only inside the box around ``structures`` (its label names)
    grown by ``margin_mm`` (x, y, z) on every side. For ``roi_crop`` the structures are the user's."""

    model: str
    margin_mm: tuple[float, float, float]
    structures: tuple[str, ...] = ()


@dataclass(frozen=True)
class Part:
    dataset: str                  # the part's nnU-Net dataset folder name (DatasetNNN_...)
    labels: dict[int, str]        # the part's own label values -> structure names


@dataclass(frozen=True)
class CleanUp:
    """One of TotalSegmentator's clean-ups of its labels on the model grid (its nnunet.py): per structure, keep
    only the largest connected component (``largest_component``), or remove the components of at most
    ``min_mm3`` (``remove_small_components``), for the ``body`` task; or, for ``vertebrae_pp``, redo touching
    vertebrae's labels from components of at least ``min_mm3`` and grow each by ``dilation_mm``
    (``relabel_vertebrae``, its structures listed from the top down: inference/vertebrae_relabel.py)."""

    kind: str
    structures: tuple[str, ...]
    min_mm3: float = 0.0
    dilation_mm: float = 0.0


CLEAN_UPS = ("largest_component", "remove_small_components", "relabel_vertebrae")


@dataclass(frozen=True)
class Conventions:
    style: str
    release: str                  # the weights release the datasets belong to (e.g. v2.0.0-weights)
    datasets: tuple[str, ...]     # the model folders' dataset names, in the order their labels are merged
    spacing_mm: tuple[float, float, float] | None  # (x, y, z) in the canonical image; None: not resampled
    step: float
    crop: Crop | None = None
    roi_crop: Crop | None = None
    parts: tuple[Part, ...] = field(default=())
    clean_up: tuple[CleanUp, ...] = field(default=())  # in order, after the merge, before going back
    auxiliary: dict[int, str] = field(default_factory=dict)  # labels the model predicts and TotalSegmentator clears


def parse_conventions(raw: Any, parts: Any, where: str) -> Conventions | None:
    """The manifest's ``conventions`` (and ``parts``) of one entry, checked; None when absent."""
    if raw is None:
        _check(parts is None, where, "'parts' needs 'conventions' (how the parts are run)")
        return None
    _check(isinstance(raw, dict) and raw.get("style") in STYLES, where,
           f"'conventions' must be an object whose 'style' is one of {', '.join(STYLES)}")
    datasets = raw.get("datasets")
    _check(isinstance(datasets, list) and datasets and all(isinstance(d, str) and d for d in datasets), where,
           "'conventions.datasets' must be a non-empty list of dataset folder names")
    step = raw.get("step")
    _check(isinstance(step, (int, float)) and not isinstance(step, bool) and 0 < step <= 1, where,
           "'conventions.step' must be a number in (0, 1]")
    _check(isinstance(raw.get("release"), str) and raw["release"], where, "'conventions.release' must be a string")
    return Conventions(style=raw["style"], release=raw["release"], datasets=tuple(datasets),
                       spacing_mm=_spacing(raw.get("spacing_mm"), where), step=float(step),
                       crop=_crop(raw.get("crop"), where, needs_structures=True),
                       roi_crop=_crop(raw.get("roi_crop"), where, needs_structures=False),
                       parts=_parts(parts, datasets, where), clean_up=_clean_up(raw.get("clean_up"), where),
                       auxiliary=_auxiliary(raw.get("auxiliary"), where))


def _spacing(raw: Any, where: str) -> tuple[float, float, float] | None:
    if raw is None:
        return None
    _check(isinstance(raw, list) and len(raw) == 3 and all(_positive(v) for v in raw), where,
           "'conventions.spacing_mm' must be three positive numbers (x, y, z) or null")
    return (float(raw[0]), float(raw[1]), float(raw[2]))


def _crop(raw: Any, where: str, needs_structures: bool) -> Crop | None:
    if raw is None:
        return None
    _check(isinstance(raw, dict) and isinstance(raw.get("model"), str) and raw["model"], where,
           "a crop needs 'model' (the manifest name of the model that finds the structures)")
    margin = raw.get("margin_mm")
    _check(isinstance(margin, list) and len(margin) == 3 and all(_positive(v) or v == 0 for v in margin), where,
           "a crop's 'margin_mm' must be three non-negative numbers")
    structures = raw.get("structures", [])
    _check(isinstance(structures, list) and all(isinstance(s, str) for s in structures)
           and (bool(structures) or not needs_structures), where, "a crop's 'structures' must be label names")
    return Crop(raw["model"], (float(margin[0]), float(margin[1]), float(margin[2])), tuple(structures))


def _parts(raw: Any, datasets: list[str], where: str) -> tuple[Part, ...]:
    if raw is None:
        return ()
    _check(isinstance(raw, list) and [p.get("dataset") if isinstance(p, dict) else None for p in raw] == datasets,
           where, "'parts' must list one object per 'conventions.datasets' entry, in the same order")
    parts = []
    for part in raw:
        labels = part.get("labels")
        _check(isinstance(labels, dict) and labels and all(str(k).isdigit() and int(k) > 0 and isinstance(v, str)
                                                           for k, v in labels.items()),
               where, f"part {part['dataset']}: 'labels' must map label values (\"1\", ...) to structure names")
        parts.append(Part(part["dataset"], {int(k): v for k, v in labels.items()}))
    return tuple(parts)


def _auxiliary(raw: Any, where: str) -> dict[int, str]:
    if raw is None:
        return {}
    _check(isinstance(raw, dict) and all(str(k).isdigit() and int(k) > 0 and isinstance(v, str)
                                         for k, v in raw.items()),
           where, "'conventions.auxiliary' must map label values (\"3\", ...) to structure names")
    return {int(k): v for k, v in raw.items()}


def _clean_up(raw: Any, where: str) -> tuple[CleanUp, ...]:
    if raw is None:
        return ()
    _check(isinstance(raw, list) and all(isinstance(step, dict) for step in raw), where,
           "'conventions.clean_up' must be a list of objects")
    steps = []
    for step in raw:
        structures = step.get("structures")
        _check(step.get("kind") in CLEAN_UPS and isinstance(structures, list) and structures
               and all(isinstance(s, str) for s in structures), where,
               f"a clean-up needs 'kind' (one of {', '.join(CLEAN_UPS)}) and 'structures' (label names)")
        size, grow = step.get("min_mm3", 0), step.get("dilation_mm", 0)
        _check(_positive(size) or size == 0, where, "a clean-up's 'min_mm3' must be a non-negative number")
        _check(_positive(grow) or grow == 0, where, "a clean-up's 'dilation_mm' must be a non-negative number")
        steps.append(CleanUp(step["kind"], tuple(structures), float(size), float(grow)))
    return tuple(steps)


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _check(condition: Any, where: str, message: str) -> None:
    if not condition:
        raise MedSegError(f"{where}: {message}.")
