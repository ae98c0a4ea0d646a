"""The one exception type for mistakes a user can make (bad input, missing files, ...).

Inside ChimeraX the command layer turns it into a ``UserError``; on the command line it is
printed as one line without a traceback.
"""


class MedSegError(Exception):
    """A problem the user can fix; the message says what was wrong and what to do."""


class Cancelled(MedSegError):
    """Long work was stopped on request (``segment stop``, Ctrl-C)."""


def one_line(error: object, limit: int = 300) -> str:
    """A third-party error message on one line (nibabel, pydicom and zipfile messages may span several)."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
