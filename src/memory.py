"""Memory needs checked up front: a refusal that says the size beats a traceback from the allocator.

Shapes that come from files (NIfTI headers, DICOM tags, plans) can claim any size. Each place
that allocates from such a shape asks ``check_memory`` first, with what it is and what to change.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable

from .errors import MedSegError

# A share of what is free: the process needs room for everything else it holds.
_USABLE_SHARE = 0.9


def available_memory() -> int:
    """Bytes of memory this process could still get: MemAvailable plus free swap (Linux), else free pages."""
    try:
        with open("/proc/meminfo") as handle:
            fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in handle if line.count(":") == 1}
        if "MemAvailable" in fields:
            return fields["MemAvailable"] + fields.get("SwapFree", 0)  # swap is slow, but it is memory
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows, some BSD names): do not refuse
        return 1 << 62


def format_bytes(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(count) < 1024 or unit == "PiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} PiB"


def array_bytes(shape: Iterable[int], itemsize: int) -> int:
    """Bytes of an array of ``shape``; Python integers, so a hostile shape cannot overflow."""
    return math.prod(int(s) for s in shape) * int(itemsize)


def check_memory(needed: int, what: str, advice: str) -> None:
    """Raise a MedSegError when ``needed`` bytes exceed what this machine has free.

    Args:
        what: the thing that needs the memory ("the resampled image (1, 4000, 4000, 4000)").
        advice: what the user can change so that it fits.
    """
    available = available_memory()
    if needed > available * _USABLE_SHARE:
        raise MedSegError(f"{what} would need {format_bytes(needed)} of memory, but only {format_bytes(available)} "
                          f"is available on this machine. {advice}")
