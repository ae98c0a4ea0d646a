"""ChimeraX commands for the model cache: ``segment models|fetch|install|remove|verify``.

Fetching and installing run in a worker thread in the GUI (progress on the status line, the
window stays responsive) and in the foreground without a GUI or with ``wait true``. The work
itself is the plain functions of ``models.install``; this module only reports.
"""
from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Callable

from .errors import MedSegError


def register_commands(logger) -> None:
    from chimerax.core.commands import BoolArg, CmdDesc, ListOf, StringArg, register

    register("segment models", CmdDesc(synopsis="List segmentation models: installed, available, embedded"),
             segment_models, logger=logger)
    register("segment fetch", CmdDesc(required=[("names", ListOf(StringArg))],
                                      keyword=[("force", BoolArg), ("wait", BoolArg)],
                                      synopsis="Download, verify and install segmentation models"),
             segment_fetch, logger=logger)
    register("segment install", CmdDesc(required=[("name", StringArg), ("path", StringArg)],
                                        keyword=[("force", BoolArg), ("wait", BoolArg)],
                                        synopsis="Install an nnU-Net model zip or folder under a name"),
             segment_install, logger=logger)
    register("segment remove", CmdDesc(required=[("names", ListOf(StringArg))],
                                       synopsis="Delete installed segmentation models"),
             segment_remove, logger=logger)
    register("segment verify", CmdDesc(optional=[("names", ListOf(StringArg))],
                                       synopsis="Check installed models' files and checkpoints"),
             segment_verify, logger=logger)


def _user_error(exc: Exception):
    from chimerax.core.errors import UserError
    return UserError(str(exc))


# --- segment models ------------------------------------------------------------------------

def segment_models(session) -> list:
    """Log every model with its state, channels, labels and licence; return the names."""
    from .models.cache import cache_dir, is_offline
    from .models.manifest import load_manifest
    from .models.registry import model_statuses
    try:
        manifest = load_manifest()
        statuses = model_statuses(manifest)
    except MedSegError as exc:
        raise _user_error(exc) from None
    rows = []
    for status in statuses:
        entry = manifest.get(status.name)
        labels = entry.label_names() if entry else []
        shown = ", ".join(labels[:6]) + (f", ... ({len(labels)} labels)" if len(labels) > 6 else "")
        size = "" if status.size is None else f"{status.size / 1e6:.0f} MB"
        cells = [status.name, status.status, ", ".join(entry.channel_names) if entry else "", shown,
                 entry.licence if entry else "", size, status.task]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    header = "".join(f"<th>{h}</th>" for h in ("Name", "Status", "Channels", "Labels", "Licence", "Size", "Task"))
    offline = " (offline mode)" if is_offline() else ""
    session.logger.info(f"<table border=1 cellpadding=4 cellspacing=0><caption>Segmentation models; cache "
                        f"{html.escape(str(cache_dir()))}{offline}</caption><tr>{header}</tr>{''.join(rows)}</table>",
                        is_html=True)
    return [s.name for s in statuses]


# --- segment fetch / install (possibly long: a worker thread in the GUI) ----------------------

class ModelTask:
    """One fetch or install running in a worker thread; results are logged on the main thread."""

    def __init__(self, session, title: str, work: Callable[["ModelTask"], list[str]]):
        self.session, self.title, self._work = session, title, work
        self.error: Exception | None = None
        self.messages: list[str] = []
        self._done = threading.Event()
        self._last_status = ""

    def start(self, wait: bool) -> "ModelTask":
        self.foreground = wait  # in the foreground, errors are raised to the command instead of logged
        if wait:
            self._run()
            self._report()
        else:
            threading.Thread(target=self._background, name="medseg-models", daemon=True).start()
        return self

    def _background(self) -> None:
        self._run()
        self.session.ui.thread_safe(self._report)

    def _run(self) -> None:
        try:
            self.messages = self._work(self)
        except Exception as exc:  # reported by _report, on the main thread
            self.error = exc
        finally:
            self._done.set()

    def status(self, text: str) -> None:
        if text != self._last_status:
            self._last_status = text
            self.session.ui.thread_safe(self.session.logger.status, text)

    def note(self, text: str) -> None:
        self.session.ui.thread_safe(self.session.logger.info, text)

    def progress(self, label: str) -> Callable[[int, int | None], None]:
        def report(done: int, total: int | None) -> None:
            if total:
                self.status(f"{label}: {done * 100 // total}% of {total / 1e6:.1f} MB")
            else:
                self.status(f"{label}: {done / 1e6:.1f} MB")
        return report

    def _report(self) -> None:
        logger = self.session.logger
        logger.status("")
        if self.error is None:
            for message in self.messages:
                logger.info(message)
        elif self.foreground:
            return
        elif isinstance(self.error, MedSegError):
            logger.error(f"{self.title} failed: {self.error}")
        else:
            logger.report_exception(preface=f"{self.title} failed",
                                    exc_info=(type(self.error), self.error, self.error.__traceback__))

    def wait(self, timeout: float | None = None) -> "ModelTask":
        self._done.wait(timeout)
        return self


def _start(session, title: str, work, wait: bool | None) -> ModelTask:
    wait = (not session.ui.is_gui) if wait is None else wait
    task = ModelTask(session, title, work).start(wait)
    if wait and task.error is not None:
        if isinstance(task.error, MedSegError):
            raise _user_error(task.error) from None
        raise task.error
    return task


def segment_fetch(session, names: list[str], force: bool = False, wait: bool | None = None) -> ModelTask:
    """Download, verify and install the named manifest models (progress on the status line)."""
    from .models.install import fetch_model

    def work(task: ModelTask) -> list[str]:
        done = []
        for name in names:
            path = fetch_model(name, progress=task.progress(f"Fetching {name}"), notify=task.note, force=force)
            done.append(f"Model {name} is installed in {path}; it now works offline.")
        return done
    return _start(session, f"Fetching {', '.join(names)}", work, wait)


def segment_install(session, name: str, path: str, force: bool = False, wait: bool | None = None) -> ModelTask:
    """Install a local nnU-Net model zip or folder under ``name`` (checked before it is committed)."""
    from .models.install import install_model

    def work(task: ModelTask) -> list[str]:
        task.status(f"Installing {name} from {Path(path).name} (checking its checkpoints)...")
        installed = install_model(name, Path(path).expanduser(), force=force, notify=task.note)
        return [f"Model {name} is installed in {installed}."]
    return _start(session, f"Installing {name}", work, wait)


# --- segment remove / verify (quick: in the foreground) ---------------------------------------

def segment_remove(session, names: list[str]) -> None:
    from .models.install import remove_model
    for name in names:
        try:
            remove_model(name, notify=session.logger.info)
        except MedSegError as exc:
            raise _user_error(exc) from None
        session.logger.info(f"Model {name} removed.")


def segment_verify(session, names: list[str] | None = None) -> list[str]:
    """Re-hash installed and embedded models' files (and re-check checkpoints); log and return problems."""
    from .models.registry import verifiable_names, verify
    names = names or verifiable_names()
    problems = []
    for name in names:
        found = verify(name)
        problems.extend(found)
        session.logger.info(f"Model {name}: " + ("ok" if not found else "; ".join(found)))
    if not names:
        session.logger.info("No models are installed.")
    if problems:
        raise _user_error(MedSegError(f"{len(problems)} problem(s) found; reinstall the model(s) "
                                      "with `segment fetch NAME force true` or `segment install NAME PATH force true`."))
    return problems
