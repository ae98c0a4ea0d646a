"""Fixtures: real label maps (TotalSegmentator's example segmentations, see tests/data/README.md)."""
from __future__ import annotations

import pytest

from evaluation_helpers import CT_FAST, CT_FULL, DICOM_CROP, load


@pytest.fixture(scope="session")
def ct_full():
    return load(CT_FULL)


@pytest.fixture(scope="session")
def ct_fast():
    return load(CT_FAST)


@pytest.fixture(scope="session")
def dicom_crop():
    return load(DICOM_CROP)
