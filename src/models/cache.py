"""Where downloaded and installed models live, the offline switch, and a cross-process lock.

Layout of the cache folder (``MEDSEG_CACHE_DIR`` overrides the platform default)::

    models/<name>/            one installed model (a complete, verified copy; never partial)
    models/<name>/medseg_install.json   what was installed, from where, SHA-256 of every file
    downloads/<file>.part     an interrupted download, resumed by the next fetch
    locks/<name>.lock         held while a process fetches, installs or removes <name>
    extracted/                model zips given by path, unpacked once (safely)
    recorded_sha256.json      hashes recorded on first download where the manifest has none
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import MedSegError

CACHE_ENV = "MEDSEG_CACHE_DIR"
OFFLINE_ENV = "MEDSEG_OFFLINE"
INSTALL_RECORD = "medseg_install.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def cache_dir() -> Path:
    """The per-user cache folder (created on demand by the functions that write to it)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
        return base / "MedSeg" / "Cache"
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "MedSeg"
    return Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "medseg"


def models_dir() -> Path:
    return cache_dir() / "models"


def downloads_dir() -> Path:
    return cache_dir() / "downloads"


def check_model_name(name: str) -> str:
    """A model name is also a folder name: letters, digits, ``_ . -`` only."""
    # fullmatch, not match: "$" would let a trailing newline through into a folder name
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise MedSegError(f"Invalid model name {name!r}: use letters, digits, '_', '.' or '-' "
                          "(at most 100 characters, not starting with a dot).")
    return name


def installed_path(name: str) -> Path:
    return models_dir() / check_model_name(name)


def is_installed(name: str) -> bool:
    return (installed_path(name) / INSTALL_RECORD).is_file()


def installed_names() -> list[str]:
    root = models_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and (p / INSTALL_RECORD).is_file())


def is_offline(offline: bool | None = None) -> bool:
    """An explicit flag wins; otherwise ``MEDSEG_OFFLINE=1`` (or true/yes) turns offline mode on."""
    if offline is not None:
        return bool(offline)
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class _FileLock:
    """An exclusive advisory lock on a file, released when the process dies (no stale locks)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if sys.platform == "win32":
                import msvcrt
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            else:
                import fcntl
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        if sys.platform == "win32":
            import msvcrt
            with contextlib.suppress(OSError):
                msvcrt.locking(self._fd, msvcrt.LK_UNLCK, 1)
        os.close(self._fd)  # closing drops a flock
        self._fd = None


@contextlib.contextmanager
def model_lock(name: str, timeout: float | None = None, on_wait=None) -> Iterator[None]:
    """Hold the lock for ``name``; wait for another process that holds it (up to ``timeout`` s).

    ``on_wait(message)`` is called once if we have to wait, so the user knows why nothing moves.
    """
    if timeout is None:
        timeout = float(os.environ.get("MEDSEG_LOCK_TIMEOUT", 3600))
    lock = _FileLock(cache_dir() / "locks" / f"{check_model_name(name)}.lock")
    deadline = time.monotonic() + timeout
    told = False
    while not lock.try_acquire():
        if time.monotonic() > deadline:
            raise MedSegError(f"Model {name!r} is busy: another MedSeg process is fetching or installing it. "
                              "Wait for it to finish and try again.")
        if on_wait and not told:
            on_wait(f"Waiting for another process that is fetching or installing {name}...")
            told = True
        time.sleep(0.1)
    try:
        yield
    finally:
        lock.release()
