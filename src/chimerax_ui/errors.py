"""The one place where the engine's MedSegError becomes ChimeraX's UserError (no traceback)."""
from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from chimerax.core.errors import UserError

from ..errors import MedSegError

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Decorate a command function: a MedSegError it raises reaches the user as a UserError.

    ``functools.wraps`` keeps the signature, which ChimeraX's ``register`` reads for keywords.
    """
    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MedSegError as exc:
            raise UserError(str(exc)) from None
    return command  # type: ignore[return-value]
