"""Atomic file writing: a failed run never leaves a partial output file behind."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError as exc:
        raise MedSegError(f"File not found: {path}") from exc
    except IsADirectoryError as exc:
        raise MedSegError(f"{path} is a folder, not a JSON file.") from exc
    except OSError as exc:
        raise MedSegError(f"Cannot read {path} ({exc.strerror or exc}).") from exc
    except UnicodeDecodeError as exc:
        raise MedSegError(f"{path} is not UTF-8 text, so not a JSON file ({exc.reason} at byte {exc.start}).") from exc
    except (json.JSONDecodeError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise MedSegError(f"{path} is not valid JSON ({str(exc)[:200]}).") from exc


def read_json_object(path: str | os.PathLike) -> dict:
    """Read a JSON file that must hold an object (``{...}``), as every config file does."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise MedSegError(f"{path} holds a JSON {type(data).__name__}, not an object ({{...}}); it is damaged "
                          "or not the file expected here.")
    return data
