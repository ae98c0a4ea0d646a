"""Models embedded in the package (the demo model): where they are, and whether they are intact."""
from __future__ import annotations

from pathlib import Path

from ..errors import MedSegError
from .download import sha256_of
from .manifest import ModelEntry

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def embedded_path(entry: ModelEntry) -> Path:
    """The embedded model's folder, after checking its files against the manifest's sizes and SHA-256."""
    problems = verify_embedded(entry)
    if problems:
        raise MedSegError(f"The embedded model {entry.name!r} is damaged ({'; '.join(problems[:3])}); "
                          "reinstall MedSeg.")
    return PACKAGE_DIR / entry.path


def verify_embedded(entry: ModelEntry) -> list[str]:
    """Problems with an embedded model's files (empty when all match the manifest)."""
    root = PACKAGE_DIR / entry.path
    if not root.is_dir():
        return [f"{root} is missing from this installation"]
    problems = []
    for f in entry.files:
        path = root / f.path
        if not path.is_file():
            problems.append(f"missing file {f.path}")
        elif path.stat().st_size != f.size or sha256_of(path) != f.sha256:
            problems.append(f"{f.path} differs from the manifest (size or SHA-256)")
    return problems
