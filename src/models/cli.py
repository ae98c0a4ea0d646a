"""``medseg models list|fetch|install|remove|verify``: manage the model cache from the command line."""
from __future__ import annotations

import argparse
import sys

from ..errors import MedSegError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list, fetch, install, remove or verify models",
                                   description="Manage the models in the per-user cache "
                                               "(MEDSEG_CACHE_DIR overrides its place; "
                                               "MEDSEG_OFFLINE=1 forbids downloads).")
    verbs = parser.add_subparsers(dest="models_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

    p = verbs.add_parser("list", help="models in the manifest and in the cache")
    p.set_defaults(func=cmd_list)

    p = verbs.add_parser("fetch", help="download, verify and install models from the manifest")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--force", action="store_true", help="download and install again even if installed")
    p.add_argument("--offline", action="store_true", default=None, help="never use the network")
    p.set_defaults(func=cmd_fetch)

    p = verbs.add_parser("install", help="install a local nnU-Net model zip or folder under a name")
    p.add_argument("name", metavar="NAME")
    p.add_argument("path", metavar="PATH", help="a model zip (as nnUNetv2_export_model_to_zip writes) or folder")
    p.add_argument("--force", action="store_true", help="replace an installed model of that name")
    p.set_defaults(func=cmd_install)

    p = verbs.add_parser("remove", help="delete installed models from the cache")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.set_defaults(func=cmd_remove)

    p = verbs.add_parser("verify", help="re-check installed and embedded models' files (SHA-256) and checkpoints")
    p.add_argument("names", nargs="*", metavar="NAME", help="default: every installed and embedded model")
    p.set_defaults(func=cmd_verify)


def _info(message: str) -> None:
    print(message, file=sys.stderr)


def cmd_list(args: argparse.Namespace) -> int:
    from .cache import cache_dir, is_offline  # loaded when the command runs (fast start-up)
    from .registry import format_size, model_statuses  # loaded when the command runs (fast start-up)

    rows = model_statuses()
    width = max([len(r.name) for r in rows] + [4])
    print(f"{'NAME':<{width}}  {'STATUS':<17}  {'SIZE':>8}  TASK")
    for row in rows:
        print(f"{row.name:<{width}}  {row.status:<17}  {format_size(row.size):>8}  {row.task}")
    print(f"\ncache: {cache_dir()}" + ("  (offline mode)" if is_offline() else ""))
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from .install import fetch_model  # loaded when the command runs (fast start-up)
    from .registry import text_progress  # loaded when the command runs (fast start-up)

    for name in args.names:
        path = fetch_model(name, progress=text_progress(f"Fetching {name}"), notify=_info,
                           force=args.force, offline=args.offline)
        print(f"{name}: installed in {path}")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    from .install import install_model  # loaded when the command runs (fast start-up)

    path = install_model(args.name, args.path, force=args.force, notify=_info)
    print(f"{args.name}: installed in {path}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from .install import remove_model  # loaded when the command runs (fast start-up)

    for name in args.names:
        remove_model(name, notify=_info)
        print(f"{name}: removed")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .registry import verifiable_names, verify  # loaded when the command runs (fast start-up)

    names = args.names or verifiable_names()
    failed = 0
    for name in names:
        problems = verify(name)
        for problem in problems:
            print(f"FAILED {problem}")
        if problems:
            failed += 1
        else:
            print(f"ok     {name}")
    if failed:
        raise MedSegError(f"{failed} model(s) failed verification; reinstall them "
                          "(`medseg models fetch --force NAME` or `medseg models install --force NAME PATH`).")
    return 0
