"""Label values as BraTS expects them, from the manifest's mapping."""
from __future__ import annotations

import numpy as np
import pytest

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.inference.label_values import BRATS_VALUES, apply_output_values
from chimerax.medseg.models.manifest import load_manifest


def test_brats_models_state_brats_values_and_they_are_applied(monkeypatch):
    monkeypatch.delenv("MEDSEG_MANIFEST", raising=False)
    mapping = load_manifest().models["brats"].output_label_values
    assert mapping == BRATS_VALUES
    labels = np.array([[0, 1, 2], [3, 3, 1]], np.uint8)
    out = apply_output_values(labels, mapping)
    np.testing.assert_array_equal(out, [[0, 2, 1], [4, 4, 2]])
    assert out.dtype == np.uint8 and labels[0, 1] == 1  # the input is left alone


def test_a_value_the_mapping_does_not_know_is_one_clear_error():
    with pytest.raises(MedSegError, match=r"value\(s\) 5"):
        apply_output_values(np.array([0, 5], np.uint8), BRATS_VALUES)
