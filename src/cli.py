"""The ``medseg`` command line: one sub-command per module, same verbs as the ChimeraX command."""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import __version__
from .cli_parser import SuggestingParser, add_verbosity
from .errors_report import run_reporting
from .progress import NORMAL, QUIET, VERBOSE, set_verbosity, verbosity

# Each module named here defines ``add_parser(subparsers)``; the parser it adds sets ``func``.
_COMMAND_MODULES = [
    "inference.cli",
    "demo",
    "models.cli",
    "images.cli",
    "evaluation.cli",
    "datasets.cli",
    "planning.cli",
    "training.cli",
]


def build_parser() -> SuggestingParser:
    parser = SuggestingParser(prog="medseg", description="3D medical image segmentation (nnU-Net v1 and v2 models).")
    parser.add_argument("--version", action="version", version=f"medseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=SuggestingParser)
    for name in _COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").add_parser(subparsers)
    for command in _leaf_parsers(parser):
        add_verbosity(command)
    return parser


def _leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser that runs a command (``models list`` as well as ``predict``)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases share a parser
                found += _leaf_parsers(child) or [child]
    return found


def _chosen_parser(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.ArgumentParser:
    """The (sub-)parser the words of ``argv`` lead to."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for word in argv:
                if word in action.choices:
                    return _chosen_parser(action.choices[word], argv[argv.index(word) + 1:])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        chosen = _chosen_parser(parser, argv)
        chosen.refuse_unknown(extras) if isinstance(chosen, SuggestingParser) else parser.error(str(extras))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    before = verbosity()
    set_verbosity(QUIET if getattr(args, "quiet", False) else VERBOSE if getattr(args, "verbose", False) else NORMAL)
    try:
        return run_reporting(lambda: args.func(args))
    finally:  # called in-process (tests, notebooks): --quiet lasts for this command only
        set_verbosity(before)


if __name__ == "__main__":
    sys.exit(main())
