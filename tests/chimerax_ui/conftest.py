"""Harness for tests that run the bundle inside real, headless ChimeraX (the PyPI wheel).

Run from the ChimeraX venv (made by scripts/setup_chimerax_env.sh):
    .venv-chimerax/bin/python -m pytest tests/chimerax_ui

Fixtures: ``session`` (one headless ChimeraX session for the whole run, emptied before each
test; ``session.capture_log`` captures log and status messages), ``run`` (run a command
text, return its result), ``log`` (the capture log, cleared per test), ``add_volume``
(numpy (z, y, x) array -> volume with origin/step in (x, y, z) and an optional 3x3 rotation),
``example_model`` / ``example_case``. See tests/chimerax_ui/README.md.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The headless-session harness lives in scripts/ (the demo renders its picture with it too).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import chimerax_headless  # noqa: E402

if not chimerax_headless.chimerax_available():
    raise pytest.UsageError("tests/chimerax_ui need the ChimeraX wheel: run `bash scripts/setup_chimerax_env.sh` "
                            "and then `.venv-chimerax/bin/python -m pytest tests/chimerax_ui`.")
# The wheel's chimerax/__init__.py is broken: the package object is made without running it,
# before anything imports chimerax.* (chimerax.medseg included).
chimerax_headless.import_chimerax_package()

from chimerax_helpers import rotation_matrix  # noqa: E402,F401  (re-exported for tests)


@pytest.fixture(scope="session")
def _shared_session(tmp_path_factory):
    return chimerax_headless.start_session(home=tmp_path_factory.mktemp("chimerax-home"))


@pytest.fixture
def session(_shared_session):
    """The headless session with no models open and an empty log."""
    s = _shared_session
    for job in list(getattr(s, "_medseg_tasks", [])):  # a test that failed mid-task
        job.stop()
        job.wait(60)
    s.models.close(list(s.models))
    s.capture_log.clear()
    yield s
    s.models.close(list(s.models))


@pytest.fixture
def log(session):
    return session.capture_log


@pytest.fixture
def run(session):
    from chimerax.core.commands import run as run_command

    def _run(text: str, **kw):
        return run_command(session, text, **kw)
    return _run


@pytest.fixture
def add_volume(session):
    def _add(array, origin=(0, 0, 0), step=(1, 1, 1), rotation=None, name="volume"):
        return chimerax_headless.add_volume(session, array, origin, step, rotation, name)
    return _add


@pytest.fixture(scope="session")
def example_model():
    from chimerax.medseg.inference.predictor import example_model_path
    path = example_model_path()
    assert (path / "dataset.json").is_file(), f"the embedded example model is missing: {path}"
    return path


@pytest.fixture(scope="session")
def example_case():
    from chimerax.medseg.inference.predictor import example_case_paths
    paths = example_case_paths()
    assert paths, "the embedded example case is missing"
    return paths
