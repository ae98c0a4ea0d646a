"""The ``medseg`` command line: one sub-command per module, same verbs as the ChimeraX command."""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from . import __version__
from .errors_report import run_reporting

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medseg", description="3D medical image segmentation (nnU-Net v2 models).")
    parser.add_argument("--version", action="version", version=f"medseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run_reporting(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
