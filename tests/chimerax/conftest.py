"""Harness for tests that run the bundle inside real, headless ChimeraX (the PyPI wheel).

Run from the ChimeraX venv (made by scripts/setup_chimerax_env.sh):
    .venv-chimerax/bin/python -m pytest tests/chimerax

Fixtures: ``session`` (one headless ChimeraX session for the whole run, emptied before each
test; ``session.capture_log`` captures log and status messages), ``run`` (run a command
text, return its result), ``log`` (the capture log, cleared per test), ``add_volume``
(numpy (z, y, x) array -> volume with origin/step in (x, y, z) and an optional 3x3 rotation),
``example_model`` / ``example_case``. See tests/chimerax/README.md.
"""
from __future__ import annotations

import importlib.util
import sys

import pytest

# The wheel's chimerax/__init__.py is broken: create the package object without running it
# before anything imports chimerax.* (chimerax.medseg included).
if "chimerax" not in sys.modules:
    _spec = importlib.util.find_spec("chimerax")
    if _spec is None or not any(
            __import__("os").path.isdir(__import__("os").path.join(p, "core")) for p in (_spec.submodule_search_locations or [])):
        raise pytest.UsageError("tests/chimerax need the ChimeraX wheel: run `bash scripts/setup_chimerax_env.sh` "
                                "and then `.venv-chimerax/bin/python -m pytest tests/chimerax`.")
    sys.modules["chimerax"] = importlib.util.module_from_spec(_spec)

from chimerax.medseg import chimerax_session  # noqa: E402
from chimerax_helpers import rotation_matrix  # noqa: E402,F401  (re-exported for tests)


@pytest.fixture(scope="session")
def _shared_session(tmp_path_factory):
    return chimerax_session.start_session(home=tmp_path_factory.mktemp("chimerax-home"))


@pytest.fixture
def session(_shared_session):
    """The headless session with no models open and an empty log."""
    s = _shared_session
    for job in list(getattr(s, "_medseg_jobs", [])):  # a test that failed mid-job
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
        return chimerax_session.add_volume(session, array, origin, step, rotation, name)
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
