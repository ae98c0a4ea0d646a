"""The command line's argument parser: close-match suggestions for misspelled sub-commands, flags
and choices, and the flags every command takes (``--quiet``, ``--verbose``)."""
from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Iterable, Sequence
from typing import NoReturn

_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


def close_matches(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    return difflib.get_close_matches(word, list(candidates), n=n, cutoff=0.6)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` (or ``'x' or 'y'``), or an empty string."""
    matches = close_matches(word, candidates)
    return f" Did you mean {' or '.join(repr(m) for m in matches)}?" if matches else ""


class SuggestingParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors suggest what was probably meant."""

    def error(self, message: str) -> NoReturn:
        found = _INVALID_CHOICE.search(message)
        if found:
            choices = [c.strip().strip("'") for c in found.group(2).split(",")]
            message += did_you_mean(found.group(1), choices)
        super().error(message)

    def option_strings(self) -> list[str]:
        return [s for action in self._actions for s in action.option_strings]

    def refuse_unknown(self, extras: Sequence[str]) -> NoReturn:
        """The error for arguments no option takes, with the closest flag for each misspelled one."""
        known = self.option_strings()
        hints = [f"{word}: give it after `{self.prog}`" if word.split("=")[0] in known else  # put before the command
                 f"{word}:{did_you_mean(word.split('=')[0], known)}" for word in extras
                 if word.startswith("-") and (word.split("=")[0] in known or did_you_mean(word.split("=")[0], known))]
        self.error(f"unrecognized arguments: {' '.join(extras)}" + (f" ({'; '.join(hints)})" if hints else ""))


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` (no progress, only results and errors) and ``--verbose`` (more detail) on one command."""
    group = parser.add_mutually_exclusive_group()
    known = {s for action in parser._actions for s in action.option_strings}
    if "--quiet" not in known:
        group.add_argument("-q", "--quiet", action="store_true", help="no progress, only results and errors")
    if "--verbose" not in known:
        group.add_argument("-v", "--verbose", action="store_true", help="more detail (timings, notes)")
