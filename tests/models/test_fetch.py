"""Fetching models over real HTTP (127.0.0.1): resume, bad servers, checksums, locks, full disks."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.models import cache as model_cache
from chimerax.medseg.models.install import fetch_model, verify_model
from registry_helpers import MODEL_DIR, Exploit, sha256_bytes, tiny_model_folder, zip_folder

SRC = Path(__file__).resolve().parents[2] / "src"


def _installed_checkpoint(name: str) -> Path:
    return model_cache.installed_path(name) / MODEL_DIR / "fold_0" / "checkpoint_final.pth"


def assert_cache_clean(cache: Path, name: str = "tiny") -> None:
    """Nothing installed, no partial download, no staging folder left behind."""
    assert not model_cache.is_installed(name)
    assert not (cache / "models" / name).exists()
    leftovers = [p.name for p in (cache / "models").glob("*")] if (cache / "models").exists() else []
    assert leftovers == []
    downloads = list((cache / "downloads").glob("*")) if (cache / "downloads").exists() else []
    assert downloads == []


def test_normal_fetch_installs_a_verified_model(cache, publish, model_zip_bytes):
    route = publish()
    seen = []
    path = fetch_model("tiny", progress=lambda done, total: seen.append((done, total)))
    assert path == cache / "models" / "tiny"
    assert _installed_checkpoint("tiny").is_file()
    assert verify_model("tiny") == []
    assert route.requests == [None]
    assert seen[-1] == (len(model_zip_bytes), len(model_zip_bytes))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # progress only moves forward
    assert list((cache / "downloads").iterdir()) == []  # the zip is not kept after install
    record = json.loads((path / "medseg_install.json").read_text())
    assert record["model_folders"] == [MODEL_DIR]
    # A second fetch finds it installed and downloads nothing.
    assert fetch_model("tiny") == path
    assert route.requests == [None]


def test_connection_cut_mid_file_is_resumed_with_a_range_request(cache, publish):
    route = publish(cut_after=200_000)
    fetch_model("tiny", retries=2)
    assert route.requests[0] is None and len(route.requests) == 2
    assert 100_000 <= _range_start(route.requests[1]) <= 200_000  # resumed, not restarted
    assert verify_model("tiny") == []


def _range_start(header: str | None) -> int:
    assert header and header.startswith("bytes=") and header.endswith("-"), header
    return int(header[len("bytes="):-1])


def test_interrupted_download_is_kept_and_resumed_by_the_next_fetch(cache, publish, model_zip_bytes):
    route = publish(cut_after=300_000, then_status=503)  # cut mid-file, then the server is down
    with pytest.raises(MedSegError, match="resume"):
        fetch_model("tiny", retries=0)
    route.then_status = None  # the server is back
    part = cache / "downloads" / "tiny--tiny.zip.part"
    kept = part.read_bytes()
    assert 200_000 <= len(kept) <= 300_000 and kept == model_zip_bytes[:len(kept)]
    assert not model_cache.is_installed("tiny")
    fetch_model("tiny", retries=0)  # a later run asks only for the rest
    assert route.requests == [None, f"bytes={len(kept)}-", f"bytes={len(kept)}-"]
    assert verify_model("tiny") == [] and not part.exists()


def test_resume_never_splices_two_versions_of_a_file(cache, publish, model_zip_bytes, tmp_path):
    route = publish(sha=None, size=None, cut_after=300_000, then_status=503, etag='"v1"')
    with pytest.raises(MedSegError, match="resume"):
        fetch_model("tiny", retries=0)
    # The file is replaced on the server before the user retries.
    new = zip_folder(tiny_model_folder(tmp_path / "v2", weights=160_000), tmp_path / "v2.zip").read_bytes()
    route.data, route.etag, route.then_status = new, '"v2"', None
    notes = []
    fetch_model("tiny", retries=0, notify=notes.append)
    assert route.if_ranges[-1] == '"v1"' and route.requests[-1].startswith("bytes=")  # asked for the rest of v1
    assert any(sha256_bytes(new) in n for n in notes)  # got, checked and recorded all of v2, not a mixture
    assert verify_model("tiny") == [] and list((cache / "downloads").iterdir()) == []


def test_server_that_ignores_range_gives_a_clean_restart(cache, publish):
    route = publish(cut_after=200_000, ignore_range=True)
    fetch_model("tiny", retries=2)
    assert route.requests[0] is None and _range_start(route.requests[1]) > 0  # asked to resume, got it all again
    assert verify_model("tiny") == []


def test_wrong_bytes_are_refused_and_leave_the_cache_clean(cache, publish, model_zip_bytes):
    tampered = bytearray(model_zip_bytes)
    tampered[1000:1010] = b"0123456789"
    publish(data=bytes(tampered))
    with pytest.raises(MedSegError, match="Checksum mismatch"):
        fetch_model("tiny")
    assert_cache_clean(cache)


def test_more_bytes_than_the_manifest_says_are_refused(cache, publish, model_zip_bytes):
    publish(data=model_zip_bytes + b"extra")
    with pytest.raises(MedSegError, match="larger than the expected"):
        fetch_model("tiny")
    assert_cache_clean(cache)


def test_404_fails_at_once_with_a_clear_message(cache, publish):
    route = publish(status=404)
    with pytest.raises(MedSegError, match="HTTP 404"):
        fetch_model("tiny", retries=3)
    assert len(route.requests) == 1  # a missing file is not retried
    assert_cache_clean(cache)


def test_server_that_does_not_answer_times_out(cache, publish):
    route = publish(delay=3.0)
    start = time.monotonic()
    with pytest.raises(MedSegError, match="did not answer in time"):
        fetch_model("tiny", timeout=0.4, retries=1)
    assert time.monotonic() - start < 6  # two attempts of 0.4 s (+ the server's sleeps not awaited)
    assert len(route.requests) == 2
    assert_cache_clean(cache)


def test_slow_but_steady_server_succeeds(cache, publish):
    route = publish(trickle=0.005)  # ~40 chunks, each well within the read timeout
    fetch_model("tiny", timeout=2.0, retries=0)
    assert route.requests == [None]
    assert verify_model("tiny") == []


def test_unpublished_sha256_is_recorded_on_first_download_and_enforced_later(cache, publish, model_zip_bytes):
    route = publish(sha=None, size=None)
    notes = []
    fetch_model("tiny", notify=notes.append)
    assert any("Recorded " + sha256_bytes(model_zip_bytes) in n for n in notes)
    recorded = json.loads((cache / "recorded_sha256.json").read_text())
    assert list(recorded.values())[0]["sha256"] == sha256_bytes(model_zip_bytes)
    # The server later serves different bytes: a re-fetch is refused against the recorded hash.
    route.data = model_zip_bytes[:-10] + b"0123456789"
    with pytest.raises(MedSegError, match="Checksum mismatch"):
        fetch_model("tiny", force=True)
    assert verify_model("tiny") == []  # the good install is untouched


def test_downloaded_checkpoint_with_malicious_pickle_is_refused(cache, publish, tmp_path):
    marker = tmp_path / "pwned"
    evil = zip_folder(tiny_model_folder(tmp_path / "evil", payload=Exploit(marker), weights=10),
                      tmp_path / "evil.zip").read_bytes()
    publish(data=evil, sha=sha256_bytes(evil), size=len(evil))
    with pytest.raises(MedSegError, match="could run code"):
        fetch_model("tiny")
    assert not marker.exists()
    assert_cache_clean(cache)
    assert not (cache / "recorded_sha256.json").exists()


_FETCH_SCRIPT = """
import sys
from chimerax.medseg.models.install import fetch_model
path = fetch_model(sys.argv[1], notify=lambda m: print(m, file=sys.stderr, flush=True))
print(path)
"""


def _env(cache: Path) -> dict:
    env = dict(os.environ, MEDSEG_CACHE_DIR=str(cache), PYTHONPATH=os.environ.get("PYTHONPATH", ""))
    return env


def _lines(stream, out: queue.Queue) -> None:
    for line in stream:
        out.put(line)


def test_two_concurrent_fetches_download_once_and_install_once(cache, publish):
    gate = threading.Event()
    route = publish(gate=gate)  # the first download stalls halfway until we open the gate
    env = _env(cache)
    first = subprocess.Popen([sys.executable, "-c", _FETCH_SCRIPT, "tiny"], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not route.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert route.requests == [None], "the first process never started downloading"
        second = subprocess.Popen([sys.executable, "-c", _FETCH_SCRIPT, "tiny"], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_lines, args=(second.stderr, lines), daemon=True).start()
        waited = False
        while time.monotonic() < deadline and not waited:
            try:
                waited = "Waiting for another process" in lines.get(timeout=1)
            except queue.Empty:
                pass
        assert waited, "the second process did not wait for the lock"
    finally:
        gate.set()
    out1, err1 = first.communicate(timeout=60)
    out2, _ = second.communicate(timeout=60)
    assert first.returncode == 0, err1
    assert second.returncode == 0
    assert out1.strip() == out2.strip() == str(cache / "models" / "tiny")
    assert route.requests == [None]  # one download in all
    assert verify_model("tiny") == []


# --- a full disk: a real 1 MB tmpfs, or (without mount rights) a real file-size limit ---------

_FULL_DISK_SCRIPT = """
import json, resource, signal, sys
limit = int(sys.argv[2])
if limit:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit then fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from chimerax.medseg.errors import MedSegError
from chimerax.medseg.models.install import fetch_model
try:
    fetch_model(sys.argv[1])
    print(json.dumps({"error": None}))
except MedSegError as exc:
    print(json.dumps({"error": str(exc)}))
"""


def _mount_tmpfs(folder: Path) -> bool:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


@pytest.fixture(params=["tmpfs", "file-size-limit"])
def small_disk(request, tmp_path):
    """(folder, rlimit): a real 1 MB tmpfs (rlimit 0) where we may mount one, and in any case a
    folder whose writer runs under a real 1 MB file-size limit (the kernel refuses larger files)."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = request.param == "tmpfs" and _mount_tmpfs(folder)
    yield folder, (0 if mounted else 1024 * 1024)
    if mounted:
        subprocess.run(["umount", str(folder)], check=False)


def _fetch_on_small_disk(small_disk, monkeypatch, name="tiny") -> str:
    folder, rlimit = small_disk
    monkeypatch.setenv("MEDSEG_CACHE_DIR", str(folder))
    result = subprocess.run([sys.executable, "-c", _FULL_DISK_SCRIPT, name, str(rlimit)], env=dict(os.environ),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])["error"]


def test_full_disk_during_download_is_a_clear_error_and_leaves_nothing(cache, publish, small_disk, monkeypatch):
    data = np.random.default_rng(1).bytes(1_500_000)  # bigger than the disk; size unknown in advance
    publish(data=data, sha=None, size=None)
    error = _fetch_on_small_disk(small_disk, monkeypatch)
    assert error and "No space left" in error
    assert_cache_clean(small_disk[0])


def test_full_disk_while_unpacking_is_a_clear_error_and_leaves_nothing(cache, publish, small_disk, monkeypatch, tmp_path):
    # The ~600 KB zip fits on the disk; unpacked (a 2 MB file compresses to a few KB) it does not.
    folder = tiny_model_folder(tmp_path / "big")
    (folder / MODEL_DIR.split("/", 1)[1] / "notes.txt").write_text("nnU-Net model notes\n" * 100_000)
    data = zip_folder(folder, tmp_path / "big.zip").read_bytes()
    assert len(data) < 800_000
    publish(data=data, sha=sha256_bytes(data), size=len(data))
    error = _fetch_on_small_disk(small_disk, monkeypatch)
    assert error and ("space" in error.lower())
    assert_cache_clean(small_disk[0])


def test_refused_connection_names_the_root_cause(cache):
    """A closed port on 127.0.0.1: the message says what went wrong, not urllib3's wrapper text."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free again once closed: nothing listens there
    from chimerax.medseg.models.download import download_file
    with pytest.raises(MedSegError) as info:
        download_file(f"http://127.0.0.1:{port}/model.zip", cache / "model.zip", retries=0, backoff=0)
    message = str(info.value)
    assert "Connection refused" in message and "Caused" not in message and "Max retries" not in message
    assert not (cache / "model.zip").exists()
