"""Download one file robustly: streamed, resumable, retried, size- and SHA-256-verified.

The bytes go to ``<dest>.part``; only a complete file whose size and hash match is renamed
onto ``dest``. An interrupted transfer keeps its ``.part`` so the next attempt (in this
process or a later one) asks the server for the rest with an HTTP Range request. A file that
turns out wrong (size or checksum) is deleted at once: nothing unverified stays on disk.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Optional

from ..errors import MedSegError
from ..memory import format_bytes
from .archive import DISK_FULL_ERRNOS

Progress = Callable[[int, Optional[int]], None]   # (bytes done, total bytes or None)
# Small enough that a cut connection loses little: bytes of a chunk cut short are never written.
CHUNK = 64 * 1024
DEFAULT_CONNECT_TIMEOUT = 15.0
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_RETRIES = 5
# A download whose size nobody published stops here (MEDSEG_MAX_DOWNLOAD_BYTES raises it):
# the largest real models are a few GB; a server streaming forever must not fill the disk.
DEFAULT_MAX_UNKNOWN_BYTES = 20 * 1024**3
_SCHEMES = ("http", "https")


class _Retry(Exception):
    """A transient failure worth another attempt (server error, cut connection)."""


def sha256_of(path: str | os.PathLike, chunk: int = 1024**2) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def download_file(url: str, dest: str | os.PathLike, *, sha256: str | None = None, size: int | None = None,
                  progress: Progress | None = None, timeout: float | None = None, retries: int | None = None,
                  backoff: float = 0.5, session=None) -> str:
    """Download ``url`` to ``dest`` and return the file's SHA-256 (hex).

    Args:
        sha256, size: what the file must be; ``None`` when unknown (then only what the server
            announces is checked, and the caller should record the hash).
        progress: called as ``progress(done_bytes, total_bytes_or_None)`` while data arrives.
        timeout: seconds to wait for the server to answer or send more data
            (default 60, or ``MEDSEG_DOWNLOAD_TIMEOUT``).
        retries: attempts after a failure that made no progress (default 5, or
            ``MEDSEG_DOWNLOAD_RETRIES``); each attempt resumes where the last one stopped.
    """
    import requests

    _check_scheme(url, url)
    cap = size if size is not None else int(_env_float("MEDSEG_MAX_DOWNLOAD_BYTES", DEFAULT_MAX_UNKNOWN_BYTES))
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    read_timeout = timeout if timeout is not None else _env_float("MEDSEG_DOWNLOAD_TIMEOUT", DEFAULT_READ_TIMEOUT)
    max_retries = retries if retries is not None else int(_env_float("MEDSEG_DOWNLOAD_RETRIES", DEFAULT_RETRIES))
    http = session or requests.Session()
    failures = 0
    try:
        while True:
            before = _part_size(part)
            try:
                timeouts = (min(DEFAULT_CONNECT_TIMEOUT, read_timeout * 4), read_timeout)
                if _fetch_once(http, url, part, size, progress, timeouts, cap):
                    break
            except requests.TooManyRedirects:
                raise MedSegError(f"Downloading {url} failed: the server redirects in a loop (or more than "
                                  f"{http.max_redirects} times). Report the broken link.") from None
            except (requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL,
                    requests.exceptions.MissingSchema) as exc:
                raise MedSegError(f"Downloading {url} failed: it leads to an address that is not http(s) "
                                  f"({_failure_reason(exc)}); nothing was downloaded.") from None
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    _Retry) as exc:
                failures = 0 if _part_size(part) > before else failures + 1
                if failures > max_retries:
                    raise MedSegError(_gave_up_message(url, exc, part, max_retries)) from None
                time.sleep(min(backoff * 2 ** max(failures - 1, 0), 10.0))
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            _discard(part)
            raise MedSegError(f"No space left on the disk in {dest.parent} while downloading {url}; the partial "
                              "file was deleted and nothing was installed. Free some space (or set MEDSEG_CACHE_DIR "
                              "to a bigger disk) and retry.") from None
        raise
    finally:
        if session is None:
            http.close()
    return _verify_and_commit(part, dest, url, sha256, size)


def _validator_path(part: Path) -> Path:
    return part.with_name(part.name + ".etag")


def _discard(part: Path) -> None:
    """Delete a partial download and what identifies its version."""
    part.unlink(missing_ok=True)
    _validator_path(part).unlink(missing_ok=True)


def _part_size(part: Path) -> int:
    try:
        return part.stat().st_size
    except FileNotFoundError:
        return 0


def _check_scheme(url: str, original: str) -> None:
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in _SCHEMES:
        what = "" if url == original else f" (a redirect from {original})"
        raise MedSegError(f"Refusing to download {url}{what}: only http and https addresses are fetched.")


def _refuse_other_schemes(original: str):
    """A response hook: a redirect to file://, ftp:// (or any non-http scheme) ends the download."""
    def hook(response, *args, **kwargs):
        if response.is_redirect:
            location = response.headers.get("Location", "")
            if ":" in location.split("/", 1)[0]:  # absolute: "scheme:..." before any slash
                _check_scheme(location, original)
        return response
    return hook


def _fetch_once(http, url: str, part: Path, size: int | None, progress: Progress | None, timeout,
                cap: int | None = None) -> bool:
    """One request; True when the file is complete, raises ``_Retry`` for transient failures."""
    have = _part_size(part)
    if size is not None and have > size:  # a stale partial from a different file: start over
        _discard(part)
        have = 0
    if size is not None and have == size:
        return True
    _check_free_space(part.parent, None if size is None else size - have, url)
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
        validator = _validator_path(part)
        if validator.is_file():  # "only the rest if the file is still the same version, else all of it"
            headers["If-Range"] = validator.read_text()
    with http.get(url, stream=True, timeout=timeout, headers=headers, allow_redirects=True,
                  hooks={"response": _refuse_other_schemes(url)}) as response:
        status = response.status_code
        if status == 416 and have:  # nothing left to send: we already have it all
            return True
        if status in (404, 410):
            raise MedSegError(f"The server has no file at {url} (HTTP {status}). The model may have moved; "
                              "update MedSeg or install the model from a file with `medseg models install`.")
        if 400 <= status < 500:
            raise MedSegError(f"The server refused the download of {url} (HTTP {status} {response.reason}).")
        if status >= 500:
            raise _Retry(f"server error HTTP {status}")
        if status == 206 and _range_start(response) != have:
            _discard(part)  # an answer for another range: start over, cleanly
            raise _Retry("the server answered a different byte range")
        mode = "ab" if status == 206 else "wb"
        if mode == "wb":
            have = 0  # the server ignored our Range request (or sent the whole file): start over
            _remember_version(part, response)
        length = response.headers.get("Content-Length")
        total = size if size is not None else (have + int(length) if length and length.isdigit() else None)
        if size is None:
            _check_cap(total, cap, url, part)
        if progress:
            progress(have, total)
        with open(part, mode) as handle:
            for chunk in response.iter_content(CHUNK):
                handle.write(chunk)
                have += len(chunk)
                if size is not None and have > size:
                    handle.close()
                    _discard(part)
                    raise MedSegError(f"{url} is larger than the expected {size} bytes; the download was deleted. "
                                      "The file on the server is not the one the manifest describes.")
                if size is None and cap is not None and have > cap:
                    handle.close()
                    _check_cap(have, cap, url, part)
                if progress:
                    progress(have, total)
    if total is not None and have < total:
        raise _Retry(f"connection closed after {have} of {total} bytes")
    return True


def _check_cap(total: int | None, cap: int | None, url: str, part: Path) -> None:
    """A download of unpublished size may not grow past ``cap`` bytes."""
    if total is None or cap is None or total <= cap:
        return
    _discard(part)
    raise MedSegError(f"Refusing the download of {url}: it is larger than {format_bytes(cap)} and no size was "
                      "published for it; the partial file was deleted. If the model really is that large, set "
                      "MEDSEG_MAX_DOWNLOAD_BYTES to a larger number of bytes.")


def _remember_version(part: Path, response) -> None:
    """Keep the file's ETag (or date) so a resume never splices two versions of a file."""
    etag = response.headers.get("ETag", "")
    validator = etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified", "")
    path = _validator_path(part)
    if validator:
        path.write_text(validator)
    else:
        path.unlink(missing_ok=True)


def _range_start(response) -> int | None:
    value = response.headers.get("Content-Range", "")  # "bytes 100-999/1000"
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _check_free_space(folder: Path, needed: int | None, url: str) -> None:
    if needed is None:
        return
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise MedSegError(f"Not enough disk space in {folder} to download {url}: it needs {needed / 1e6:.1f} MB, "
                          f"{free / 1e6:.1f} MB are free. Free some space or set MEDSEG_CACHE_DIR to a bigger disk.")


def _gave_up_message(url: str, exc: Exception, part: Path, retries: int) -> str:
    kept = _part_size(part)
    resume = f" The {kept / 1e6:.1f} MB received so far are kept; run the same command again to resume." if kept else ""
    attempts = f"{retries + 1} attempt{'s' if retries else ''}"
    return (f"Downloading {url} failed after {attempts} ({_failure_reason(exc)}). "
            f"Check the network connection.{resume}")


def _failure_reason(exc: Exception) -> str:
    """The root cause in a few words, e.g. "Failed to resolve 'host' ([Errno -2] Name or service not
    known)", not urllib3's wrapper text ("Max retries exceeded ... (Caused by ...")."""
    if "timed out" in str(exc).lower() or "timeout" in type(exc).__name__.lower():
        return "the server did not answer in time"
    cause = getattr(exc.args[0], "reason", None) if exc.args else None
    root = cause if cause is not None else exc
    lines = str(root).splitlines()
    text = lines[0] if lines else type(root).__name__
    if text.startswith(("HTTPConnection(", "HTTPSConnection(")):  # urllib3 names the connection first
        text = text.split("): ", 1)[-1]
    return text if len(text) <= 200 else text[:199] + "…"


def _verify_and_commit(part: Path, dest: Path, url: str, sha256: str | None, size: int | None) -> str:
    actual_size = _part_size(part)
    if size is not None and actual_size != size:
        _discard(part)
        raise MedSegError(f"The download of {url} has {actual_size} bytes, expected {size}; it was deleted and "
                          "nothing was installed.")
    digest = sha256_of(part)
    if sha256 is not None and digest != sha256.lower():
        _discard(part)
        raise MedSegError(f"Checksum mismatch for {url}: expected SHA-256 {sha256}, got {digest}. The file was "
                          "deleted and nothing was installed (a damaged or tampered download).")
    os.replace(part, dest)
    _validator_path(part).unlink(missing_ok=True)
    return digest
