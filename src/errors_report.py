"""The one place where a failed command becomes one line on stderr, never a bare traceback.

Expected failures (a MedSegError, a file the system refuses, a file that does not decode, a
download that leads nowhere, a damaged archive) print ``medseg: error: ...`` and exit 1. An
unexpected exception is a bug: it prints one short line and saves the traceback to a file the
user can attach to a report.
"""
from __future__ import annotations

import datetime
import errno
import json
import os
import sys
import tempfile
import traceback
import warnings
import zipfile
from pathlib import Path
from typing import Callable

from .errors import MedSegError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def describe_expected(exc: BaseException) -> str | None:
    """The one-line message for an expected failure, or None when ``exc`` is a bug."""
    if isinstance(exc, MedSegError):
        return str(exc)
    if isinstance(exc, OSError):
        return _describe_os_error(exc)
    if isinstance(exc, UnicodeError):
        return f"a file is not valid text ({exc}); check that the right file was given."
    if isinstance(exc, json.JSONDecodeError):
        return f"a JSON file is not valid JSON ({exc})."
    if isinstance(exc, (zipfile.BadZipFile, zipfile.LargeZipFile)):
        return f"a zip archive is damaged or cannot be read ({exc})."
    return _describe_http_error(exc)


_OS_HINTS = {"ENOSPC": " Free some space and run again.", "EDQUOT": " Free some space and run again.",
             "EROFS": " Choose a folder on a writable disk.", "EACCES": " Check the permissions.",
             "EPERM": " Check the permissions.", "ENOENT": " Check the path."}


def _describe_os_error(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    hint = _OS_HINTS.get(errno.errorcode.get(exc.errno or 0, ""), "")
    return f"{reason}{where}.{hint}"


def _describe_http_error(exc: BaseException) -> str | None:
    requests = sys.modules.get("requests")  # only loaded when something was downloaded
    if requests is not None and isinstance(exc, requests.RequestException):
        return f"the download failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})."
    return None


def save_traceback(exc: BaseException) -> Path | None:
    """Write the traceback to a file (in MEDSEG_LOG_DIR or the temporary folder); None if that fails."""
    folder = Path(os.environ.get("MEDSEG_LOG_DIR") or tempfile.gettempdir())
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"medseg-traceback-{stamp}-", suffix=".txt", dir=folder)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"medseg {' '.join(sys.argv[1:])}\n\n")
            handle.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return Path(name)
    except OSError:
        return None


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ARG001
    """Warnings as ``medseg: warning: ...``, not Python's file:line report (only how they print:
    code that records warnings still sees them)."""
    return f"medseg: warning: {' '.join(str(message).split())}\n"


def run_reporting(func: Callable[[], int | None]) -> int:
    """Run one command; turn every failure into one line on stderr and an exit status."""
    warnings.formatwarning = _one_line_warning
    try:
        return int(func() or 0)
    except BrokenPipeError:  # the reader went away (`medseg models list | head -1`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit must not fail again
        return 0
    except KeyboardInterrupt:
        print("medseg: interrupted; no partial output was written.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - this is the one place that reports every failure
        message = describe_expected(exc)
        if message is not None:
            print(f"medseg: error: {message}", file=sys.stderr)
            return EXIT_ERROR
        saved = save_traceback(exc)
        where = f"the details are in {saved}" if saved else "the details could not be saved"
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        print(f"medseg: internal error: {type(exc).__name__}: {first} (a bug in MedSeg; {where}; please "
              "report it with that file).", file=sys.stderr)
        return EXIT_ERROR
