"""What an install recorded about its model, read back from the model's own folder.

``medseg_install.json`` sits at the top of each install (``models/<name>/``), while the model folder
the engine opens may lie deeper (a v1 zip unpacks to ``nnUNet/<configuration>/<Task>/<Trainer>__<Plans>/``).
An install of a manifest model records the entry's ``output_label_values`` there (BraTS's own
values), so the installed model keeps writing them, offline too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import MedSegError
from ..fileio import read_json_object
from . import cache
from .manifest import output_values_or_none

OUTPUT_VALUES_KEY = "output_label_values"


def install_root(path: Path) -> Path | None:
    """The install (``models/<name>/``) that holds ``path``, or None for a folder outside the cache."""
    root, here = cache.models_dir().resolve(), Path(path).resolve()
    if root not in here.parents:
        return None
    top = root / here.relative_to(root).parts[0]
    return top if (top / cache.INSTALL_RECORD).is_file() else None


def recorded_output_values(path: Path) -> dict[int, int] | None:
    """The label value mapping the install of ``path`` recorded from its manifest entry (None: none)."""
    top = install_root(path)
    if top is None:
        return None
    raw = read_json_object(top / cache.INSTALL_RECORD).get(OUTPUT_VALUES_KEY)
    return None if raw is None else parse_output_values(raw, top / cache.INSTALL_RECORD)


def parse_output_values(raw: Any, where: Path | str) -> dict[int, int]:
    mapping = output_values_or_none(raw)
    if mapping is None:
        raise MedSegError(f"{where}: '{OUTPUT_VALUES_KEY}' must map label values to distinct non-negative integers; "
                          "the install record is damaged. Reinstall the model.")
    return mapping


def output_values_entry(mapping: dict[int, int] | None) -> dict[str, Any]:
    """The record's field for a mapping (JSON keys are text); nothing for no mapping."""
    return {} if not mapping else {OUTPUT_VALUES_KEY: {str(k): int(v) for k, v in sorted(mapping.items())}}
