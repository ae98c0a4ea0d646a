"""ChimeraX ``segment train dataset ID ...``, ``segment train status``, ``segment train stop``.

Training runs as a separate process (``medseg train``), so ChimeraX stays responsive and a crash
of the training cannot take the session with it. Its output lines go to the log; on success the
model folder is installed under a name and is usable as ``segment NAME #1``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from .errors import MedSegError


def register_commands(logger) -> None:
    from chimerax.core.commands import BoolArg, CmdDesc, IntArg, StringArg, register
    desc = CmdDesc(required=[("dataset", StringArg)],
                   keyword=[("configuration", StringArg), ("fold", StringArg), ("epochs", IntArg),
                            ("iterations", IntArg), ("device", StringArg), ("pretrained", StringArg),
                            ("trainer", StringArg), ("name", StringArg), ("resume", BoolArg), ("wait", BoolArg),
                            ("options", StringArg)],
                   synopsis="Train a segmentation model on a planned dataset (runs as a separate process)")
    register("segment train dataset", desc, segment_train, logger=logger)
    register("segment train status", CmdDesc(synopsis="Report the running training"), segment_train_status,
             logger=logger)
    register("segment train stop", CmdDesc(synopsis="Stop the running training (resume later with resume true)"),
             segment_train_stop, logger=logger)


class TrainingRun:
    """A ``medseg train`` process and the lines it printed."""

    def __init__(self, session, command: list[str], install_name: str | None) -> None:
        self.session, self.command, self.install_name = session, command, install_name
        self.lines: list[str] = []
        self._logged = 0
        self.model_dir: Path | None = None
        self.installed: Path | None = None
        self.stopped = False
        self._finished = threading.Event()
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self._reader = threading.Thread(target=self._read, name="medseg-train-log", daemon=True)
        self._reader.start()

    @property
    def running(self) -> bool:
        return self.process.poll() is None or not self._finished.is_set()

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def _read(self) -> None:
        for line in self.process.stdout:
            line = line.rstrip()
            self.lines.append(line)
            if line.startswith("Model folder: "):
                self.model_dir = Path(line[len("Model folder: "):])
            if self.session.ui.is_gui:
                self.session.ui.thread_safe(self.flush_log)
        self.process.wait()
        self._finished.set()
        if self.session.ui.is_gui:
            self.session.ui.thread_safe(self.finish)

    def flush_log(self) -> None:
        """Log the lines not logged yet (main thread)."""
        for line in self.lines[self._logged:]:
            if line.startswith("epoch "):
                self.session.logger.status(f"Training: {line}")
            self.session.logger.info(line)
        self._logged = len(self.lines)

    def finish(self) -> None:
        """After the process ended: log the rest, install the model on success (main thread)."""
        self.flush_log()
        if self.installed is not None or self.returncode is None:
            return
        if self.stopped:
            self.session.logger.info("Training stopped; continue it with the same command and 'resume true'.")
        elif self.returncode != 0:
            self.session.logger.error(f"Training failed (exit code {self.returncode}); see the log above.")
        elif self.model_dir is not None and self.install_name:
            from .models.install import install_model
            self.installed = install_model(self.install_name, self.model_dir, force=True)
            self.session.logger.info(f"Training finished. Model installed as '{self.install_name}': use it with "
                                     f"segment {self.install_name} #1")

    def wait(self, timeout: float | None = None) -> "TrainingRun":
        if not self._finished.wait(timeout):
            raise TimeoutError(f"training still running after {timeout} s")
        self._reader.join(5)
        self.finish()
        return self

    def stop(self) -> None:
        self.stopped = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # the command line stops cleanly; checkpoints stay
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def train_command(dataset: str, configuration: str = "3d_fullres", fold: str = "0", epochs: int | None = None,
                  iterations: int | None = None, device: str = "auto", pretrained: str | None = None,
                  trainer: str | None = None, resume: bool = False, options: str | None = None) -> list[str]:
    """The ``medseg train`` command line the process runs (``options``: extra command-line flags)."""
    import shlex
    command = [_python(), "-c", _LAUNCHER, "train", dataset, configuration, "-f", *fold.split(","),
               "--device", device]
    if epochs is not None:
        command += ["--epochs", str(epochs)]
    if iterations is not None:
        command += ["--iterations", str(iterations)]
    if pretrained:
        command += ["--pretrained", pretrained]
    if trainer:
        command += ["--trainer", trainer]
    if resume:
        command.append("--resume")
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


def _current(session) -> TrainingRun | None:
    return getattr(session, "_medseg_training", None)


def segment_train(session, dataset: str, configuration: str = "3d_fullres", fold: str = "0",
                  epochs: int | None = None, iterations: int | None = None, device: str = "auto",
                  pretrained: str | None = None, trainer: str | None = None, name: str | None = None,
                  resume: bool = False, wait: bool | None = None, options: str | None = None) -> TrainingRun:
    """Start ``medseg train`` for a planned dataset; logs its progress; installs the model as ``name``."""
    from chimerax.core.errors import UserError
    running = _current(session)
    if running is not None and running.running:
        raise UserError("A training is already running; `segment train status` shows it, `segment train stop` "
                        "stops it.")
    try:
        install_name = name or _default_name(dataset)
        from .models.cache import check_model_name
        check_model_name(install_name)
        command = train_command(dataset, configuration, fold, epochs, iterations, device, pretrained, trainer,
                                resume, options)
    except MedSegError as exc:
        raise UserError(str(exc)) from None
    run = TrainingRun(session, command, install_name)
    session._medseg_training = run
    session.logger.info(f"Training {dataset} {configuration} fold {fold} in a separate process "
                        f"(pid {run.process.pid}); `segment train status` reports, `segment train stop` stops.")
    if wait if wait is not None else not session.ui.is_gui:
        run.wait()
    return run


def segment_train_status(session) -> TrainingRun | None:
    run = _current(session)
    if run is None:
        session.logger.info("No training was started in this session.")
        return None
    run.flush_log()
    epochs = [line for line in run.lines if line.startswith("epoch ")]
    state = "running" if run.running else ("stopped" if run.stopped else
                                           "finished" if run.returncode == 0 else f"failed ({run.returncode})")
    last = epochs[-1] if epochs else (run.lines[-1] if run.lines else "starting")
    session.logger.info(f"Training {state}: {last}")
    if not run.running:
        run.finish()
    return run


def segment_train_stop(session) -> None:
    run = _current(session)
    if run is None or not run.running:
        session.logger.info("No training is running.")
        return
    run.stop()
    run.wait(60)


def _default_name(dataset: str) -> str:
    """``41``, ``Dataset041_Blob`` or its folder -> ``blob``: a short name to call the model by."""
    from .datasets.paths import find_dataset
    try:
        base = find_dataset(dataset).name  # an id names the dataset by its folder
    except MedSegError:
        base = Path(dataset).name
    parts = base.split("_", 1)
    return (parts[1] if len(parts) == 2 and parts[0].startswith("Dataset") else base).lower()
