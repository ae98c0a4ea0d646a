"""Fixtures for the hostile catalogue: a tiny real model (built by nnU-Net's code) and a case."""
from pathlib import Path

import pytest

import hostile_helpers  # noqa: F401 (puts the engine/images/models helpers on the path)
from tiny_models import make_model, write_case


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("model"), {"background": 0, "core": 1, "edema": 2})


@pytest.fixture(scope="session")
def skipping_model(tmp_path_factory) -> Path:
    """Labels that skip values: {background: 0, a: 1, b: 5}."""
    return make_model(tmp_path_factory.mktemp("skip_model"), {"background": 0, "a": 1, "b": 5}, seed=3)


@pytest.fixture
def case_files(tmp_path) -> list[Path]:
    return write_case(tmp_path / "in", shape=(6, 30, 28))
