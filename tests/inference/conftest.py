"""Fixtures: tiny real models (see inference_helpers.py) and a test case."""
from pathlib import Path

import pytest

from inference_helpers import make_model, write_case


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("model"), {"background": 0, "core": 1, "edema": 2}, folds=(0, 1))


@pytest.fixture(scope="session")
def tiny_region_model(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("region_model"),
                      {"background": 0, "whole": [1, 2], "core": [2]}, regions_class_order=[1, 2])


@pytest.fixture
def case_files(tmp_path) -> list[Path]:
    return write_case(tmp_path / "in")
