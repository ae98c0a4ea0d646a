"""Model zips, downloads, installs and plans that attack or are broken: refused whole, nothing left behind."""
from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hostile_helpers import assert_one_error_line, files_under, run_cli
from registry_helpers import tiny_model_folder
from inference_helpers import make_model

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.models.archive import safe_extract_zip
from chimerax.medseg.models.download import download_file
from chimerax.medseg.models.install import install_model
from chimerax.medseg.models.model_folder import open_model_folder

# --- zip archives ---------------------------------------------------------------------------

def _zip(members: list[tuple[str, bytes]], method=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buffer.getvalue()


def _extract(tmp_path, data: bytes) -> Path:
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    safe_extract_zip(path, tmp_path / "out")
    return tmp_path / "out"


def _refused(tmp_path, data: bytes, match: str) -> None:
    with pytest.raises(MedSegError, match=match):
        _extract(tmp_path, data)
    assert files_under(tmp_path / "out") == [] and not [p for p in tmp_path.iterdir() if "extract" in p.name]


def test_many_small_members_that_add_up_to_gigabytes_are_refused(tmp_path):
    # each member stays under the per-member ratio threshold; together: 80 x 1 MiB from ~80 KB
    members = [(f"m/{i:04d}.bin", bytes(1024**2)) for i in range(80)]
    data = _zip(members)
    assert len(data) < 200_000
    _refused(tmp_path, data, "expand")


def test_encrypted_member_is_refused(tmp_path):
    data = bytearray(_zip([("m/a.txt", b"secret")], zipfile.ZIP_STORED))
    # set the "encrypted" flag bit in the local and central headers
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        flags = struct.unpack_from("<H", data, at + offset)[0] | 0x1
        struct.pack_into("<H", data, at + offset, flags)
    _refused(tmp_path, bytes(data), "encrypted")


def test_unknown_compression_method_is_refused(tmp_path):
    data = bytearray(_zip([("m/a.txt", b"hello")], zipfile.ZIP_STORED))
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        struct.pack_into("<H", data, data.find(signature) + offset, 99)  # 99: AES, unknown here
    _refused(tmp_path, bytes(data), "compression method")


def test_a_name_that_is_both_file_and_folder_is_refused(tmp_path):
    _refused(tmp_path, _zip([("m/a", b"file"), ("m/a/b", b"inside")]), "both a file and a folder")


def test_a_300_character_name_is_refused(tmp_path):
    _refused(tmp_path, _zip([("m/" + "x" * 300, b"long")]), "longer than 255")


def test_control_characters_in_names_are_refused(tmp_path):
    _refused(tmp_path, _zip([("m/evil\nname", b"x")]), "control characters")


def test_corrupt_deflate_data_is_one_error(tmp_path):
    data = bytearray(_zip([("m/a.bin", os.urandom(5000))]))
    start = data.find(b"m/a.bin") + len("m/a.bin")
    data[start + 100:start + 200] = bytes(100)
    _refused(tmp_path, bytes(data), "damaged")


def test_a_central_directory_offset_that_leads_before_the_file_is_one_error(tmp_path):
    # found by the fuzz layer: zipfile then seeks to a negative offset (OSError EINVAL), which
    # is a damaged archive, not a disk problem
    data = bytearray(_zip([("m/a.txt", b"hello" * 10), ("m/b.txt", b"world" * 10)], zipfile.ZIP_STORED))
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<I", data, end + 16, struct.unpack_from("<I", data, end + 16)[0] + 100)
    _refused(tmp_path, bytes(data), "damaged")


# --- downloads ------------------------------------------------------------------------------

class _Server:
    """A real HTTP server on 127.0.0.1 that redirects, loops or streams without end."""

    def __init__(self) -> None:
        routes = self.routes = {}

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                kind, value = routes.get(self.path, ("missing", None))
                if kind == "redirect":
                    self.send_response(302)
                    self.send_header("Location", value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif kind == "unsized":  # no Content-Length: `value` bytes, then the connection closes
                    self.send_response(200)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    try:
                        for _ in range(value // (64 * 1024)):
                            self.wfile.write(bytes(64 * 1024))
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                else:
                    self.send_error(404)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def http():
    server = _Server()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/model.zip", "gopher://x/y"])
def test_redirect_to_another_scheme_is_refused(http, tmp_path, target):
    http.routes["/m.zip"] = ("redirect", target)
    with pytest.raises(MedSegError, match="only http and https"):
        download_file(http.url("/m.zip"), tmp_path / "m.zip", retries=0)
    assert files_under(tmp_path) == []


def test_redirect_loop_is_refused(http, tmp_path):
    http.routes["/a"] = ("redirect", http.url("/b"))
    http.routes["/b"] = ("redirect", http.url("/a"))
    with pytest.raises(MedSegError, match="redirects in a loop"):
        download_file(http.url("/a"), tmp_path / "m.zip", retries=0)


def test_download_of_unknown_size_is_capped(http, tmp_path, monkeypatch):
    # a server that would stream for ever, scaled down: 16 MiB of unannounced size against a 2 MiB cap
    http.routes["/unsized"] = ("unsized", 16 * 1024**2)
    monkeypatch.setenv("MEDSEG_MAX_DOWNLOAD_BYTES", str(2 * 1024**2))
    with pytest.raises(MedSegError, match="MEDSEG_MAX_DOWNLOAD_BYTES"):
        download_file(http.url("/unsized"), tmp_path / "m.zip", retries=0, timeout=5)
    assert files_under(tmp_path) == []  # the partial file went too


def test_a_non_http_address_is_refused_up_front(tmp_path):
    with pytest.raises(MedSegError, match="only http and https"):
        download_file("file:///etc/hostname", tmp_path / "m.zip")


# --- installs -------------------------------------------------------------------------------

def test_model_name_ending_in_a_newline_is_refused(cache, tmp_path):
    folder = tiny_model_folder(tmp_path / "src", weights=100)
    with pytest.raises(MedSegError, match="Invalid model name"):
        install_model("mine\n", folder)
    assert not (cache / "models").exists() or files_under(cache / "models") == []


_KILLED_INSTALL = """
import os, signal, sys
from chimerax.medseg.models import install
real = install.check_model_tree
def die(root):  # the staging folder is complete on disk: now the process is killed
    os.kill(os.getpid(), signal.SIGKILL)
install.check_model_tree = die
install.install_model("m", sys.argv[1])
"""


def test_an_install_killed_midway_is_cleaned_on_the_next_run(cache, tmp_path):
    folder = tiny_model_folder(tmp_path / "src", weights=100)
    result = subprocess.run([sys.executable, "-c", _KILLED_INSTALL, str(folder)], env=dict(os.environ), timeout=120)
    assert result.returncode == -9
    leftovers = [p.name for p in (cache / "models").iterdir()]
    assert leftovers and all(name.startswith(".m.install-") for name in leftovers)
    install_model("m", folder)
    assert sorted(p.name for p in (cache / "models").iterdir()) == ["m"]


def test_a_read_only_cache_is_one_error_line(cache, tmp_path, capsys, monkeypatch):
    folder = tiny_model_folder(tmp_path / "src", weights=100)
    monkeypatch.setenv("MEDSEG_CACHE_DIR", "/sys/kernel/medseg-cache" if os.geteuid() == 0 else "/proc/medseg")
    code, _, err = run_cli(capsys, "models", "install", "m", folder)
    assert_one_error_line(code, err)


# --- plans and JSON files -------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_root(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("plans_model"), {"background": 0, "a": 1})


def _damaged_copy(model_root: Path, tmp_path: Path, name: str, edit) -> Path:
    import shutil
    folder = tmp_path / model_root.name
    shutil.copytree(model_root, folder)
    target = folder / name
    edit(target)
    return folder


def _edit_plans(change):
    def edit(path: Path):
        plans = json.loads(path.read_text())
        change(plans["configurations"]["3d_fullres"])
        path.write_text(json.dumps(plans))
    return edit


HOSTILE_PLANS = {
    "inherits from itself": (_edit_plans(lambda c: c.update(inherits_from="3d_fullres")), "loop"),
    "patch 4096^3": (_edit_plans(lambda c: c.update(patch_size=[4096, 4096, 4096])), "memory"),
    "200000 features": (_edit_plans(lambda c: c["architecture"]["arch_kwargs"].update(
        features_per_stage=[200000, 200000, 200000])), "memory"),
    "features 0": (_edit_plans(lambda c: c["architecture"]["arch_kwargs"].update(
        features_per_stage=[0, 16, 32])), "positive whole numbers"),
    "features too few": (_edit_plans(lambda c: c["architecture"]["arch_kwargs"].update(
        features_per_stage=[8, 16])), "entries for 3 stages"),
    "n_stages string": (_edit_plans(lambda c: c["architecture"]["arch_kwargs"].update(n_stages="3")), "n_stages"),
    "plans a list": (lambda p: p.write_text("[1, 2]"), "not an object"),
    "plans not UTF-8": (lambda p: p.write_bytes(b"\xff\xfe{\x00}"), "not UTF-8"),
    "plans a folder": (lambda p: (p.unlink(), p.mkdir()), "not an nnU-Net model folder|is a folder"),
    "dataset.json a list": (lambda p: p.write_text("[]"), "not an object"),
    # found by the fuzz layer: a channel key that is not a number
    "dataset.json channel key ' '": (lambda p: p.write_text(json.dumps(
        {**json.loads(p.read_text()), "channel_names": {" ": "T1", "1": "T2"}})), "channel_names"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_PLANS))
def test_hostile_plans_are_one_error_line(model_root, case_files, tmp_path, capsys, case):
    edit, match = HOSTILE_PLANS[case]
    name = "dataset.json" if case.startswith("dataset") else "plans.json"
    folder = _damaged_copy(model_root, tmp_path, name, edit)
    with pytest.raises(MedSegError, match=match):
        open_model_folder(folder)
    code, _, err = run_cli(capsys, "predict", "--quiet", "--device", "cpu", "-m", folder,
                           "-i", *case_files, "-o", tmp_path / "o.nii.gz")
    assert_one_error_line(code, err)
