"""Fixtures for the hostile catalogue: a tiny real model (built by nnU-Net's code) and a case."""
from pathlib import Path

import pytest
from hostile_helpers import Hung  # (importing it also puts the inference/images/models helpers on the path)
from registry_helpers import cache  # noqa: F401 (the isolated model cache fixture)
from inference_helpers import make_model, write_case


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


TEST_SECONDS = 120  # every hostile test is seconds long; past this it has hung (a FIFO, a loop)


@pytest.fixture(autouse=True)
def fail_instead_of_hanging():
    """A hang is a failure here, not a stuck CI job: SIGALRM interrupts even a blocking open()."""
    import signal

    def alarm(signum, frame):
        raise Hung(f"the test hung for more than {TEST_SECONDS} s")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(TEST_SECONDS)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
