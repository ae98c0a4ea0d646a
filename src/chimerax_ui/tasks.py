"""One task helper for long work in ChimeraX: a worker thread, status messages, Stop, results
delivered on the main thread.

``segment`` (a prediction), ``segment fetch|install`` and ``segment train`` (a training process)
all run as a :class:`BackgroundTask`. Without a GUI (or with ``wait true``) the command waits for
the task and an expected failure (MedSegError) becomes the command's UserError; in the GUI the
window stays responsive and the outcome is logged when the work ends.
"""
from __future__ import annotations

import threading
import time
from typing import Any, TypeVar

from chimerax.core.errors import UserError

from ..errors import Cancelled, MedSegError

_Task = TypeVar("_Task", bound="BackgroundTask")  # start() and wait() return the subclass


class BackgroundTask:
    """Subclasses give ``title`` and implement :meth:`work` (worker thread) and :meth:`deliver`
    (main thread, on success). ``state``: pending, running, done, cancelled or failed."""

    thread_name = "medseg-task"

    def __init__(self, session: Any, title: str) -> None:
        self.session = session
        self.title = title
        self.state = "pending"
        self.error: BaseException | None = None
        self.started = 0.0
        self.ended: float | None = None
        self._result: Any = None
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._delivered = False
        self._thread: threading.Thread | None = None
        self._last_status = ""
        self._foreground = False  # the command waits: it raises the failure instead of logging it

    # -- to implement --
    def work(self) -> Any:
        """The long work (worker thread): return the result; check :meth:`stopping` often."""
        raise NotImplementedError

    def deliver(self, result: Any) -> None:
        """Show the result (main thread)."""

    def cancelled(self) -> None:
        """Report a stop (main thread)."""
        self.session.logger.info(f"{self.title} stopped; nothing was added.")

    # -- control --
    def start(self: _Task, wait: bool | None = None) -> _Task:
        """Run :meth:`work` in a thread; with ``wait`` (default: without a GUI) block until it is delivered."""
        running_tasks(self.session).append(self)
        self._foreground = wait if wait is not None else not self.session.ui.is_gui
        self.state, self.started = "running", time.perf_counter()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        if self._foreground:
            self.wait()
            if self.state == "failed" and self.error is not None:
                if isinstance(self.error, MedSegError):
                    raise UserError(str(self.error))
                raise self.error
        return self

    def stop(self) -> None:
        """Ask the work to stop at its next check; nothing will be delivered."""
        self._stop.set()

    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self: _Task, timeout: float | None = None) -> _Task:
        """Block until the work ends, then deliver (call on the main thread)."""
        if not self._finished.wait(timeout):
            raise TimeoutError(f"{self.title} still running after {timeout} s")
        self._finish()
        return self

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def seconds(self) -> float:
        """Seconds the work has run (until it ended)."""
        return (self.ended if self.ended is not None else time.perf_counter()) - self.started

    # -- thread-safe reporting --
    def status(self, text: str) -> None:
        if text != self._last_status:
            self._last_status = text
            self.session.ui.thread_safe(self.session.logger.status, text)

    def note(self, text: str) -> None:
        self.session.ui.thread_safe(self.session.logger.info, text)

    # -- internals --
    def _run(self) -> None:
        try:
            self._result = self.work()
        except BaseException as exc:  # reported on the main thread by _finish
            self.error = exc
        finally:
            self.ended = time.perf_counter()
            self._finished.set()
            if self.session.ui.is_gui:
                self.session.ui.thread_safe(self._finish)

    def _finish(self) -> None:
        if self._delivered:
            return
        self._delivered = True
        tasks = running_tasks(self.session)
        if self in tasks:
            tasks.remove(self)
        logger = self.session.logger
        logger.status("")
        if isinstance(self.error, Cancelled) or (self.error is None and self._stop.is_set()):
            self.state, self.error = "cancelled", None
            self.cancelled()
            return
        if self.error is not None:
            self._failed(self.error)
            return
        try:
            self.deliver(self._result)
        except Exception as exc:  # e.g. an input volume closed meanwhile
            self._failed(exc)
            return
        self.state = "done"

    def _failed(self, error: BaseException) -> None:
        self.state, self.error = "failed", error
        if self._foreground:
            return
        if isinstance(error, MedSegError):
            self.session.logger.error(f"{self.title} failed: {error}")
        else:
            self.session.logger.report_exception(preface=f"{self.title} failed",
                                                 exc_info=(type(error), error, error.__traceback__))


def running_tasks(session: Any, kind: type | None = None) -> list:
    """The session's running tasks (of one kind, if given); the list itself when no kind is given."""
    tasks = getattr(session, "_medseg_tasks", None)
    if tasks is None:
        tasks = session._medseg_tasks = []
    return tasks if kind is None else [t for t in tasks if isinstance(t, kind)]
