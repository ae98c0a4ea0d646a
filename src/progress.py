"""A small text progress bar for the command line (no dependency)."""
from __future__ import annotations

import sys
import time


class ProgressBar:
    def __init__(self, label: str, width: int = 30, stream=None) -> None:
        stream = stream or sys.stderr  # looked up now: sys.stderr may be replaced after import
        self.label, self.width, self.stream = label, width, stream
        self.start = time.perf_counter()
        self._last = -1.0
        self.interactive = stream.isatty()

    def update(self, fraction: float, message: str = "") -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        if not self.interactive and fraction - self._last < 0.25 and fraction < 1.0:
            return  # in logs, a line per quarter is enough
        self._last = fraction
        filled = int(self.width * fraction)
        bar = "#" * filled + "-" * (self.width - filled)
        text = f"{self.label} [{bar}] {fraction * 100:5.1f}% {time.perf_counter() - self.start:6.1f}s {message}"
        self.stream.write(("\r" + text) if self.interactive else text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()
