"""ChimeraX ``segment train dataset ID ...``, ``segment train status``, ``segment train stop``.

Training runs as a separate process (``medseg train``), so ChimeraX stays responsive and a crash
of the training cannot take the session with it. Its output lines go to the log; on success the
model folder is installed under a name and is usable as ``segment NAME #1``.
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from chimerax.core.commands import BoolArg, CmdDesc, EnumOf, IntArg, StringArg, register
from chimerax.core.errors import UserError

from ..datasets.paths import find_dataset
from ..errors import MedSegError
from ..models.cache import check_model_name
from ..models.install import install_model
from ..training.variants import LOSSES
from .errors import user_errors
from .tasks import BackgroundTask, running_tasks


def register_commands(logger: Any) -> None:
    desc = CmdDesc(required=[("dataset", StringArg)],
                   keyword=[("configuration", StringArg), ("fold", StringArg), ("epochs", IntArg),
                            ("iterations", IntArg), ("device", StringArg), ("pretrained", StringArg),
                            ("trainer", StringArg), ("loss", EnumOf(LOSSES)), ("num_folds", IntArg),
                            ("freeze_stages", IntArg), ("plans", StringArg), ("name", StringArg),
                            ("resume", BoolArg), ("overwrite", BoolArg), ("wait", BoolArg), ("options", StringArg)],
                   synopsis="Train a segmentation model on a planned dataset (runs as a separate process)")
    register("segment train dataset", desc, segment_train, logger=logger)
    register("segment train status", CmdDesc(synopsis="Report the running training"), segment_train_status,
             logger=logger)
    register("segment train stop", CmdDesc(synopsis="Stop the running training (resume later with resume true)"),
             segment_train_stop, logger=logger)


class TrainingRun(BackgroundTask):
    """A ``medseg train`` process: its lines go to the log; on success the model it reports in its
    result file (``--result-file``) is installed under ``install_name``."""

    thread_name = "medseg-train-log"

    def __init__(self, session: Any, command: list[str], install_name: str) -> None:
        super().__init__(session, "Training")
        handle, result = tempfile.mkstemp(prefix="medseg-train-", suffix=".json")
        os.close(handle)
        self.result_file = Path(result)
        self.command = command + ["--result-file", str(self.result_file)]
        self.install_name = install_name
        self.lines: list[str] = []
        self.installed: Path | None = None
        self._logged = 0
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=dict(os.environ, PYTHONUNBUFFERED="1"))

    @property
    def running(self) -> bool:
        return not self.finished

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def work(self) -> Path | None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            if self.session.ui.is_gui:
                self.session.ui.thread_safe(self.flush_log)
        self.process.wait()
        return self._model_folder()

    def _model_folder(self) -> Path | None:
        try:
            text = self.result_file.read_text()
            return Path(json.loads(text)["model_folder"]) if text else None
        except (OSError, ValueError, KeyError):
            return None
        finally:
            self.result_file.unlink(missing_ok=True)

    def flush_log(self) -> None:
        """Log the lines not logged yet (main thread)."""
        for line in self.lines[self._logged:]:
            if line.startswith("epoch "):
                self.session.logger.status(f"Training: {line}")
            self.session.logger.info(line)
        self._logged = len(self.lines)

    def deliver(self, model_folder: Path | None) -> None:
        self.flush_log()
        if self.returncode != 0 or model_folder is None:
            raise MedSegError(f"exit code {self.returncode}; see the log above.")
        self.installed = install_model(self.install_name, model_folder, force=True)
        self.session.logger.info(f"Training finished. Model installed as '{self.install_name}': use it with "
                                 f"segment {self.install_name} #1")

    def cancelled(self) -> None:
        self.flush_log()
        self.session.logger.info("Training stopped; continue it with the same command and 'resume true'.")

    def stop(self) -> None:
        super().stop()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # the command line stops cleanly; checkpoints stay
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


# ChimeraX keyword -> medseg train flag, where the names differ ("continue" is a Python keyword).
_FLAGS = {"resume": "--continue"}


def train_command(dataset: str, configuration: str = "3d_fullres", fold: str = "0", options: str | None = None,
                  **flags: Any) -> list[str]:
    """The ``medseg train`` command line the process runs: each given keyword becomes its flag
    (``epochs=5`` -> ``--epochs 5``, ``overwrite=True`` -> ``--overwrite``); ``options`` adds raw flags."""
    command = [_python(), "-c", _LAUNCHER, "train", dataset, configuration, "-f", *fold.split(",")]
    for name, value in flags.items():
        if value is None or value is False:
            continue
        flag = _FLAGS.get(name, "--" + name.replace("_", "-"))
        command += [flag] if value is True else [flag, str(value)]
    return command + (shlex.split(options) if options else [])


# Runs ``medseg`` with ChimeraX's Python. The chimerax namespace package's __init__ may import
# parts of ChimeraX that need the application (the PyPI wheel's does); the CLI needs none of them.
_LAUNCHER = """import importlib.util, sys
try:
    import chimerax
except Exception:
    sys.modules['chimerax'] = importlib.util.module_from_spec(importlib.util.find_spec('chimerax'))
from chimerax.medseg.cli import main
sys.argv[0] = 'medseg'
sys.exit(main())
"""


def _python() -> str:
    """The Python of this ChimeraX (on macOS/Windows ChimeraX's own executable is not Python)."""
    exe = Path(sys.executable)
    if exe.name.lower().startswith("python"):
        return str(exe)
    for candidate in (exe.parent / "python3", exe.parent / "python3.exe", exe.parent / "python.exe",
                      exe.parent.parent / "bin" / "python3"):
        if candidate.is_file():
            return str(candidate)
    raise MedSegError(f"Cannot find the Python interpreter beside {exe} to run the training process.")


def _current(session: Any) -> TrainingRun | None:
    return getattr(session, "_medseg_training", None)


@user_errors
def segment_train(session: Any, dataset: str, configuration: str = "3d_fullres", fold: str = "0",
                  name: str | None = None, wait: bool | None = None, options: str | None = None,
                  device: str = "auto", **flags: Any) -> TrainingRun:
    """Start ``medseg train`` for a planned dataset; logs its progress; installs the model as ``name``.

    ``flags`` are the other keywords (epochs, iterations, pretrained, trainer, loss, numFolds,
    freezeStages, plans, resume, overwrite), passed on as ``medseg train``'s flags.
    """
    if running_tasks(session, TrainingRun):
        raise UserError("A training is already running; `segment train status` shows it, `segment train stop` "
                        "stops it.")
    install_name = name or _default_name(dataset)
    check_model_name(install_name)
    command = train_command(dataset, configuration, fold, options, device=device, **flags)
    run = TrainingRun(session, command, install_name)
    session._medseg_training = run
    session.logger.info(f"Training {dataset} {configuration} fold {fold} in a separate process "
                        f"(pid {run.process.pid}); `segment train status` reports, `segment train stop` stops.")
    run.start(wait)
    return run


def segment_train_status(session: Any) -> TrainingRun | None:
    run = _current(session)
    if run is None:
        session.logger.info("No training was started in this session.")
        return None
    run.flush_log()
    epochs = [line for line in run.lines if line.startswith("epoch ")]
    state = "running" if run.running else {"cancelled": "stopped", "done": "finished"}.get(
        run.state, f"failed ({run.returncode})")
    last = epochs[-1] if epochs else (run.lines[-1] if run.lines else "starting")
    session.logger.info(f"Training {state}: {last}")
    return run


def segment_train_stop(session: Any) -> None:
    run = _current(session)
    if run is None or not run.running:
        session.logger.info("No training is running.")
        return
    run.stop()
    run.wait(60)


def _default_name(dataset: str) -> str:
    """``41``, ``Dataset041_Blob`` or its folder -> ``blob``: a short name to call the model by."""
    try:
        base = find_dataset(dataset).name  # an id names the dataset by its folder
    except MedSegError:
        base = Path(dataset).name
    parts = base.split("_", 1)
    return (parts[1] if len(parts) == 2 and parts[0].startswith("Dataset") else base).lower()
