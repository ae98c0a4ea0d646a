"""Extract zip archives without letting them write outside their target folder.

A downloaded model zip is untrusted input: a member named ``../../.bashrc`` or ``/etc/x``
("zip slip"), a symbolic link, or a small file that inflates to terabytes (a "zip bomb")
must never reach the disk. Everything is extracted into a hidden folder beside the target
and renamed onto it at the end, so a half-extracted archive is never visible.
"""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ..errors import MedSegError
from . import cache

# Generous for real models (TotalSegmentator's largest unpack to a few GB) yet far below
# what a bomb claims. Override with MEDSEG_MAX_UNZIPPED_BYTES if a model really is bigger.
DEFAULT_MAX_TOTAL_BYTES = 64 * 1024**3
MAX_MEMBERS = 100_000
# Checkpoints (float weights) hardly compress; JSON compresses ~10x. A ratio above this on a
# large member is what bombs look like.
MAX_RATIO = 1000
_RATIO_MIN_SIZE = 1024**2
# The whole archive too: many small members each under the per-member threshold (2000 members of
# 1 MiB zeros zip to 3 MB) must not add up to gigabytes. Real model zips are mostly weights (~1x).
MAX_TOTAL_RATIO = 100
_TOTAL_RATIO_MIN_SIZE = 64 * 1024**2
_MAX_NAME_BYTES = 255  # one path component (NAME_MAX on Linux, macOS and Windows)
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
_CHUNK = 1024**2
# "Disk full", "file too large" (a size limit) and "quota exceeded" all mean: no room.
DISK_FULL_ERRNOS = tuple(getattr(errno, n) for n in ("ENOSPC", "EFBIG", "EDQUOT") if hasattr(errno, n))


def _max_total_bytes() -> int:
    value = os.environ.get("MEDSEG_MAX_UNZIPPED_BYTES")
    return int(value) if value else DEFAULT_MAX_TOTAL_BYTES


def _safe_member_path(name: str) -> PurePosixPath:
    """The member's path relative to the target, or an error if it could land elsewhere."""
    unified = name.replace("\\", "/")
    path = PurePosixPath(unified)
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise MedSegError(f"Refusing archive member {name!r}: it has an absolute path.")
    if any(part == ".." for part in path.parts):
        raise MedSegError(f"Refusing archive member {name!r}: it would be written outside the target folder.")
    if any(len(part.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES for part in path.parts):
        raise MedSegError(f"Refusing archive member {name[:60]!r}...: a part of its name is longer than "
                          f"{_MAX_NAME_BYTES} bytes, which no file system stores.")
    if any(ord(c) < 32 for c in unified):
        raise MedSegError(f"Refusing archive member {name!r}: its name holds control characters.")
    return path


def _check_decodable(info: zipfile.ZipInfo) -> None:
    """Encrypted members and compression methods Python cannot inflate are refused up front."""
    if info.flag_bits & 0x1:
        raise MedSegError(f"Refusing archive member {info.filename!r}: it is encrypted (password-protected). "
                          "Unpack it yourself and install the folder.")
    if info.compress_type not in _METHODS:
        raise MedSegError(f"Refusing archive member {info.filename!r}: it uses compression method "
                          f"{info.compress_type}, which cannot be unpacked here (stored, deflate, bzip2 or lzma only).")


def _check_tree(files: set[str], folders: set[str]) -> None:
    """A name may not be both a file and a folder (``a`` and ``a/b``)."""
    for key in files:
        parent = key.rpartition("/")[0]
        while parent:
            folders.add(parent)
            parent = parent.rpartition("/")[0]
    clash = sorted(files & folders)
    if clash:
        raise MedSegError(f"Refusing archive: {clash[0]!r} is both a file and a folder in it.")


def _check_total_ratio(total: int, compressed: int) -> None:
    if total > _TOTAL_RATIO_MIN_SIZE and total > MAX_TOTAL_RATIO * max(compressed, 1):
        raise MedSegError(f"Refusing archive: its members expand {total // max(compressed, 1)} times in all, to "
                          f"{total / 1024**3:.1f} GB (a zip bomb?). A model archive is mostly weights, which hardly "
                          "compress.")


def _is_link_or_special(info: zipfile.ZipInfo) -> bool:
    kind = stat.S_IFMT(info.external_attr >> 16)  # Unix file type, when the archiver recorded one
    return kind not in (0, stat.S_IFREG, stat.S_IFDIR)


def check_zip_members(zf: zipfile.ZipFile,
                      max_total_bytes: int | None = None) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Validate every member before anything is written; return (member, relative path) pairs."""
    limit = _max_total_bytes() if max_total_bytes is None else max_total_bytes
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise MedSegError(f"Refusing archive with {len(infos)} members (more than {MAX_MEMBERS}).")
    total, compressed, seen, checked = 0, 0, set(), []
    files: set[str] = set()
    folders: set[str] = set()
    for info in infos:
        rel = _safe_member_path(info.filename)
        if _is_link_or_special(info):
            raise MedSegError(f"Refusing archive member {info.filename!r}: it is a link or special file.")
        key = str(rel).rstrip("/")
        if key in ("", "."):
            continue
        if key in seen:
            raise MedSegError(f"Refusing archive: member {info.filename!r} appears twice.")
        seen.add(key)
        (folders if info.is_dir() else files).add(key)
        _check_decodable(info)
        total += info.file_size
        compressed += info.compress_size
        if total > limit:
            raise MedSegError(f"Refusing archive: it would unpack to more than {limit / 1024**3:.0f} GB "
                              "(a zip bomb?). Set MEDSEG_MAX_UNZIPPED_BYTES to allow larger models.")
        if info.file_size > _RATIO_MIN_SIZE and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise MedSegError(f"Refusing archive member {info.filename!r}: it expands "
                              f"{info.file_size // max(info.compress_size, 1)}"
                              " times (a zip bomb?).")
        checked.append((info, rel))
    _check_total_ratio(total, compressed)
    _check_tree(files, folders)
    return checked


def _copy_capped(src, dst, declared: int, name: str) -> None:
    """Copy a member, refusing one that inflates beyond the size its header declares."""
    written = 0
    while chunk := _read_member(src, name):
        written += len(chunk)
        if written > declared:
            raise MedSegError(f"Refusing archive member {name!r}: it inflates beyond its declared size.")
        dst.write(chunk)


def _read_member(src, name: str) -> bytes:
    try:
        return src.read(_CHUNK)
    except OSError as exc:  # reading the archive (a seek past its end...), not writing the disk
        raise MedSegError(f"The archive is damaged or cannot be unpacked ({name}: {exc}).") from exc


def safe_extract_zip(zip_path: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Extract ``zip_path`` into the folder ``dest`` (which must not exist or be empty).

    Members with absolute paths, ``..`` components, links or special files, and archives
    that would unpack to absurd sizes are refused with a MedSegError before anything is
    written. Extraction happens in a hidden sibling folder renamed onto ``dest`` at the end.
    If another process extracts to the same ``dest`` concurrently, the first to finish wins.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise MedSegError(f"Cannot extract {zip_path.name} into {dest}: it already exists and is not empty.")
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as exc:
        raise MedSegError(f"{zip_path} is not a readable zip archive ({exc}).") from exc
    with zf:
        members = check_zip_members(zf)
        dest.parent.mkdir(parents=True, exist_ok=True)
        needed = sum(info.file_size for info, _ in members)
        free = shutil.disk_usage(dest.parent).free
        if needed > free:
            raise MedSegError(f"Not enough disk space to unpack {zip_path.name} in {dest.parent}: it needs "
                              f"{needed / 1e6:.1f} MB, {free / 1e6:.1f} MB are free. Free some space and retry.")
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))
        try:
            _extract_members(zf, members, staging)
            _commit_folder(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def _extract_members(zf: zipfile.ZipFile, members, staging: Path) -> None:
    root = staging.resolve()
    for info, rel in members:
        target = staging.joinpath(*rel.parts)
        # Belt and braces: after joining, the path must still be inside the staging folder.
        if not target.resolve().is_relative_to(root):
            raise MedSegError(f"Refusing archive member {info.filename!r}: "
                              "it would be written outside the target folder.")
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            src = _open_member(zf, info)
            with src, open(target, "xb") as dst:
                _copy_capped(src, dst, info.file_size, info.filename)
        except OSError as exc:
            if exc.errno in DISK_FULL_ERRNOS:
                raise MedSegError(f"No space left on the disk while unpacking {info.filename}; nothing was "
                                  "installed. Free some space (or set MEDSEG_CACHE_DIR to a bigger disk) "
                                  "and retry.") from exc
            raise
        except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, ValueError, zlib.error) as exc:
            # RuntimeError: encrypted; NotImplementedError: an unknown method; ValueError: a bad header
            raise MedSegError(f"The archive is damaged or cannot be unpacked ({info.filename}: {exc}).") from exc


def _open_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo):
    """The member's stream; an offset or header that leads nowhere is a damaged archive, not a disk error."""
    try:
        return zf.open(info)
    except (OSError, zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise MedSegError(f"The archive is damaged or cannot be unpacked ({info.filename}: {exc}).") from exc


def _commit_folder(staging: Path, dest: Path) -> None:
    """Rename the finished folder onto ``dest`` (atomic on one filesystem)."""
    if dest.is_dir() and not any(dest.iterdir()):
        dest.rmdir()
    try:
        os.rename(staging, dest)
    except OSError:
        if dest.is_dir() and any(dest.iterdir()):  # a concurrent extraction finished first
            shutil.rmtree(staging, ignore_errors=True)
            return
        raise


def extract_zip_to_cache(zip_path: Path) -> Path:
    """Unpack a model zip into ``<cache>/extracted/`` once (keyed by path, size and time)."""
    info = zip_path.stat()
    key = hashlib.sha256(f"{zip_path.resolve()}:{info.st_size}:{info.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache.cache_dir() / "extracted" / f"{zip_path.stem}-{key}"
    if not target.is_dir():
        safe_extract_zip(zip_path, target)
    return target
