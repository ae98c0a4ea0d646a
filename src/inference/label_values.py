"""Label values as a field expects them, e.g. BraTS's own (2 edema, 1 necrosis, 4 enhancing tumour).

nnU-Net models write their own consecutive values (BraTS: 1 edema, 2 necrosis, 3 enhancing); BraTS
tools and challenge submissions expect 2, 1 and 4. The manifest states the mapping for such models
(``output_label_values``); this applies it to a finished label map, after postprocessing (whose rules
refer to the model's own values).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import MedSegError
from ..models.description import ModelFolder

BRATS_VALUES = {1: 2, 2: 1, 3: 4}  # nnU-Net's BraTS label -> BraTS's own


def apply_output_values(labels: np.ndarray, mapping: Mapping[int, int]) -> np.ndarray:
    """A new label map with each value replaced as ``mapping`` says (background and unlisted values kept)."""
    present = set(np.unique(labels).tolist()) - {0}
    unmapped = sorted(present - set(mapping))
    if unmapped:
        raise MedSegError(f"The label map holds value(s) {', '.join(map(str, unmapped))} that the model's output value "
                          f"mapping does not list ({dict(mapping)}).")
    lookup = np.arange(max(max(mapping), int(labels.max(initial=0))) + 1)
    for source, target in mapping.items():
        lookup[source] = target
    dtype = labels.dtype if max(mapping.values()) <= np.iinfo(labels.dtype).max else np.int16
    return lookup[labels].astype(dtype)


def output_values(folder: ModelFolder, training_label_values: bool = False) -> dict[int, int] | None:
    """The mapping a prediction of ``folder`` applies: its install's (the manifest's) unless the user asked
    for the training values. Checked before any work: it must cover every value the model writes."""
    mapping = None if training_label_values else folder.output_label_values
    if mapping:
        unmapped = sorted(set(folder.labels.names) - set(mapping))
        if unmapped:
            raise MedSegError(f"Model {folder.path} writes label value(s) {', '.join(map(str, unmapped))} that the "
                              f"output value mapping its install recorded ({dict(mapping)}) does not list: it is not "
                              "the manifest's model. Reinstall it under another name, or use --training-label-values.")
    return mapping


def output_names(names: Mapping[int, str], mapping: Mapping[int, int] | None) -> dict[int, str]:
    """Label names keyed by the values written (a region is keyed by the value it writes)."""
    return {mapping.get(v, v) if mapping else v: name for v, name in names.items()}


def output_members(members: Mapping[int, tuple[int, ...]], mapping: Mapping[int, int] | None) -> dict[int, tuple]:
    """Which written values make up each label or region (BraTS: whole tumour = 2, 1 and 4)."""
    if not mapping:
        return dict(members)
    return {mapping.get(v, v): tuple(mapping.get(m, m) for m in inside) for v, inside in members.items()}
