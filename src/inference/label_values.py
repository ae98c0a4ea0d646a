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
