"""Progress and messages on the command line: one bar that stays on one line on a terminal and
prints sparse lines when piped, with the rate and the time left; and the verbosity every
command takes (``--quiet``, ``--verbose``).

No dependency (tqdm or rich would do the bar, but ChimeraX's Python need not have them and the
bar is the only thing we would use).
"""
from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

QUIET, NORMAL, VERBOSE = -1, 0, 1
_level = NORMAL
PIPED_EVERY_SECONDS = 30.0  # when piped: a line per quarter of the work, or at least this often


def set_verbosity(level: int) -> None:
    global _level
    _level = level


def verbosity() -> int:
    return _level


def detail(text: str) -> None:
    """A line only ``--verbose`` shows (on stderr, beside the progress)."""
    if _level >= VERBOSE:
        print(text, file=sys.stderr, flush=True)


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressBar:
    """``update(fraction, message)`` as work goes on, ``close()`` at the end; silent with --quiet."""

    def __init__(self, label: str, width: int = 24, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr  # looked up now: sys.stderr may be replaced after import
        self.label, self.width = label, width
        self.start = time.perf_counter()
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = _level > QUIET
        self._last_fraction, self._last_time, self._drawn = -1.0, self.start, False

    def update(self, fraction: float, message: str = "") -> None:
        if not self.enabled:
            return
        fraction = min(max(fraction, 0.0), 1.0)
        now = time.perf_counter()
        if not self.interactive and fraction < 1.0 and fraction - self._last_fraction < 0.25 \
                and now - self._last_time < PIPED_EVERY_SECONDS:
            return
        self._last_fraction, self._last_time = fraction, now
        text = self.line(fraction, message, now - self.start)
        if self.interactive:
            columns = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r" + text[:columns].ljust(columns))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._drawn = True

    def line(self, fraction: float, message: str, elapsed: float) -> str:
        """``label [####----]  42% 0:12 elapsed, 0:16 left (message)``."""
        filled = int(self.width * fraction)
        left = f", {format_seconds(elapsed * (1 - fraction) / fraction)} left" if 0.02 < fraction < 1 else ""
        tail = f" ({message})" if message else ""
        return (f"{self.label} [{'#' * filled}{'-' * (self.width - filled)}] {fraction * 100:3.0f}% "
                f"{format_seconds(elapsed)} elapsed{left}{tail}")

    def close(self) -> None:
        if self.enabled and self.interactive and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
