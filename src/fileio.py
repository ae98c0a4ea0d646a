"""Atomic file writing: a failed run never leaves a partial output file behind."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import MedSegError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only on success.

    ``suffix`` keeps the extension writers look at (``.nii.gz``); by default the target's.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else "".join(target.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".part{suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise MedSegError(f"No space left on the disk while writing {target}; nothing was written. "
                              "Free some space and run again.") from exc
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, turning a missing or broken file into a clear error."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise MedSegError(f"File not found: {path}") from exc
    except json.JSONDecodeError as exc:
        raise MedSegError(f"{path} is not valid JSON ({exc}).") from exc
