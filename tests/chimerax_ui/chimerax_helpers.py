"""Small helpers for the ChimeraX tests (importable as `chimerax_helpers`)."""
from __future__ import annotations

import numpy as np


def rotation_matrix(axis, degrees: float) -> np.ndarray:
    """3x3 rotation about ``axis`` by ``degrees`` (right-handed)."""
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k
