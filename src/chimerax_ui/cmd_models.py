"""ChimeraX commands for the model cache: ``segment models|fetch|install|remove|verify``.

Fetching and installing run in a worker thread in the GUI (progress on the status line, the
window stays responsive) and in the foreground without a GUI or with ``wait true``. The work
itself is the plain functions of ``models.install``; this module only reports.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Callable

from chimerax.core.commands import BoolArg, CmdDesc, ListOf, StringArg, register

from ..errors import MedSegError
from ..models.cache import cache_dir, is_offline
from ..models.install import fetch_model, install_model, remove_model
from ..models.manifest import load_manifest
from ..models.registry import format_size, model_statuses, verifiable_names, verify
from .errors import user_errors
from .tasks import BackgroundTask


def register_commands(logger: Any) -> None:
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


# --- segment models ------------------------------------------------------------------------

@user_errors
def segment_models(session: Any) -> list:
    """Log every model with its state, channels, labels and licence; return the names."""
    manifest = load_manifest()
    statuses = model_statuses(manifest)
    rows = []
    for status in statuses:
        entry = manifest.get(status.name)
        labels = entry.label_names() if entry else []
        shown = ", ".join(labels[:6]) + (f", ... ({len(labels)} labels)" if len(labels) > 6 else "")
        size = format_size(status.size)
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

class ModelTask(BackgroundTask):
    """One fetch or install: ``job(task)`` does the work and returns the lines to log."""

    thread_name = "medseg-models"

    def __init__(self, session: Any, title: str, job: Callable[[ModelTask], list[str]]) -> None:
        super().__init__(session, title)
        self._job = job

    def work(self) -> list[str]:
        return self._job(self)

    def deliver(self, messages: list[str]) -> None:
        for message in messages:
            self.session.logger.info(message)

    def progress(self, label: str) -> Callable[[int, int | None], None]:
        def report(done: int, total: int | None) -> None:
            if total:
                self.status(f"{label}: {done * 100 // total}% of {total / 1e6:.1f} MB")
            else:
                self.status(f"{label}: {done / 1e6:.1f} MB")
        return report


@user_errors
def segment_fetch(session: Any, names: list[str], force: bool = False, wait: bool | None = None) -> ModelTask:
    """Download, verify and install the named manifest models (progress on the status line)."""
    def work(task: ModelTask) -> list[str]:
        done = []
        for name in names:
            path = fetch_model(name, progress=task.progress(f"Fetching {name}"), notify=task.note, force=force)
            done.append(f"Model {name} is installed in {path}; it now works offline.")
        return done
    return ModelTask(session, f"Fetching {', '.join(names)}", work).start(wait)


@user_errors
def segment_install(session: Any, name: str, path: str, force: bool = False, wait: bool | None = None) -> ModelTask:
    """Install a local nnU-Net model zip or folder under ``name`` (checked before it is committed)."""
    def work(task: ModelTask) -> list[str]:
        task.status(f"Installing {name} from {Path(path).name} (checking its checkpoints)...")
        installed = install_model(name, Path(path).expanduser(), force=force, notify=task.note)
        return [f"Model {name} is installed in {installed}."]
    return ModelTask(session, f"Installing {name}", work).start(wait)


# --- segment remove / verify (quick: in the foreground) ---------------------------------------

@user_errors
def segment_remove(session: Any, names: list[str]) -> None:
    for name in names:
        remove_model(name, notify=session.logger.info)
        session.logger.info(f"Model {name} removed.")


@user_errors
def segment_verify(session: Any, names: list[str] | None = None) -> list[str]:
    """Re-hash installed and embedded models' files (and re-check checkpoints); log and return problems."""
    names = names or verifiable_names()
    problems = []
    for name in names:
        found = verify(name)
        problems.extend(found)
        session.logger.info(f"Model {name}: " + ("ok" if not found else "; ".join(found)))
    if not names:
        session.logger.info("No models are installed.")
    if problems:
        raise MedSegError(f"{len(problems)} problem(s) found; reinstall the model(s) "
                          "with `segment fetch NAME force true` or `segment install NAME PATH force true`.")
    return problems
