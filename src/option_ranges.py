"""Range checks for numeric options, one message style for every command.

argparse checks types only: ``--cases -3`` or ``--base-features 0`` parse fine and then do
something silent or absurd. Each command checks its numbers with these before any work starts.
"""
from __future__ import annotations

import math

from .errors import MedSegError


def check_int(value: int | None, option: str, low: int = 1, high: int | None = None) -> None:
    """``value`` (None = not given) must be a whole number in [low, high]."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise MedSegError(f"{option} must be a whole number {bound}; got {value!r}.")


def check_float(value: float | None, option: str, low: float = 0.0, high: float | None = None,
                low_inclusive: bool = False) -> None:
    """``value`` (None = not given) must be finite, above ``low`` (or equal, if inclusive) and at most ``high``."""
    if value is None:
        return
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (value >= low if low_inclusive else value > low) and (high is None or value <= high)
    if not ok:
        above = f"at least {low}" if low_inclusive else f"above {low}"
        raise MedSegError(f"{option} must be a number {above}{f' and at most {high}' if high is not None else ''}; "
                          f"got {value!r}.")
