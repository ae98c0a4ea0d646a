"""Real pieces for the registry tests: tiny nnU-Net model zips and an HTTP server on 127.0.0.1.

The server is a real socket server (``http.server``) whose per-file behaviour can be set to
what bad networks and bad servers do: cut the connection mid-file, ignore Range requests,
answer slowly, trickle, or hold a response until the test says go.
"""
from __future__ import annotations

import pytest

import hashlib
import io
import json
import os
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

MODEL_DIR = "Dataset901_Tiny/nnUNetTrainer__nnUNetPlans__3d_fullres"


def tiny_model_folder(root: Path, payload: object | None = None, weights: int = 150_000) -> Path:
    """Write a small nnU-Net v2 model tree (``Dataset901_Tiny/<Trainer>__<Plans>__<cfg>/``) under root.

    ``weights`` random float32 values make the checkpoint about 4*weights bytes and
    incompressible, so downloads are big enough to cut in the middle. ``payload`` is stored
    in the checkpoint as is (a malicious object for the pickle tests).
    """
    import torch

    folder = root / MODEL_DIR
    (folder / "fold_0").mkdir(parents=True)
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "T1"}, "labels": {"background": 0, "tumour": 1},
        "numTraining": 2, "file_ending": ".nii.gz"}))
    (folder / "plans.json").write_text(json.dumps({
        "dataset_name": "Dataset901_Tiny", "plans_name": "nnUNetPlans",
        "configurations": {"3d_fullres": {"patch_size": [16, 16, 16], "spacing": [1.0, 1.0, 1.0]}}}))
    rng = np.random.default_rng(0)
    checkpoint = {"network_weights": {"w": torch.from_numpy(rng.standard_normal(weights).astype(np.float32))},
                  "init_args": {"configuration": "3d_fullres", "fold": 0}, "trainer_name": "nnUNetTrainer",
                  "inference_allowed_mirroring_axes": (0, 1, 2), "current_epoch": 1}
    if payload is not None:
        checkpoint["payload"] = payload
    torch.save(checkpoint, folder / "fold_0" / "checkpoint_final.pth")
    return root / "Dataset901_Tiny"


def zip_folder(folder: Path, zip_path: Path) -> Path:
    """Zip ``folder`` with its own name as the top-level entry (nnU-Net's export layout)."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder.parent).as_posix())
    return zip_path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Exploit:
    """Unpickling this runs a shell command; a safe loader must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@dataclass
class Route:
    data: bytes
    status: int = 200
    cut_after: int | None = None     # send this many body bytes, then drop the connection ...
    cut_times: int = 1               # ... on this many requests
    then_status: int | None = None   # once the cuts are used up, answer this HTTP error (server down)
    ignore_range: bool = False       # always answer 200 with the whole file
    delay: float = 0.0               # seconds before answering at all
    trickle: float = 0.0             # seconds between 16 KiB chunks
    gate: threading.Event | None = None  # after half the body, wait for this event
    etag: str | None = None          # sent as ETag; a Range with a stale If-Range gets the whole file
    requests: list = field(default_factory=list)  # Range header (or None) of each GET
    if_ranges: list = field(default_factory=list)  # If-Range header (or None) of each GET


class ModelServer:
    """``ThreadingHTTPServer`` on 127.0.0.1 with a free port, serving configurable routes."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.started = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                server._serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def add(self, path: str, data: bytes, **behaviour) -> Route:
        route = Route(data, **behaviour)
        self.routes["/" + path.lstrip("/")] = route
        return route

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        route = self.routes.get(handler.path)
        range_header = handler.headers.get("Range")
        if route is None:
            handler.send_error(404)
            return
        route.requests.append(range_header)
        if_range = handler.headers.get("If-Range")
        route.if_ranges.append(if_range)
        if if_range is not None and if_range != route.etag:
            range_header = None  # the file changed since the client's partial copy: send all of it
        if route.delay:
            time.sleep(route.delay)
        if route.status != 200 or (route.then_status and route.cut_times == 0):
            handler.send_error(route.status if route.status != 200 else route.then_status)
            return
        start = 0
        if range_header and not route.ignore_range:
            start = int(range_header.split("=")[1].split("-")[0])
        body = route.data[start:]
        if start:
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(route.data) - 1}/{len(route.data)}")
        else:
            handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        if route.etag:
            handler.send_header("ETag", route.etag)
        handler.send_header("Accept-Ranges", "none" if route.ignore_range else "bytes")
        handler.end_headers()
        limit = len(body)
        if route.cut_after is not None and route.cut_times > 0:
            route.cut_times -= 1
            limit = route.cut_after
        self._send(handler, route, body[:limit])
        handler.close_connection = True

    @staticmethod
    def _send(handler, route: Route, body: bytes) -> None:
        chunk = 16 * 1024
        try:
            for offset in range(0, len(body), chunk):
                if route.gate is not None and offset >= len(body) // 2:
                    route.gate.wait(30)
                    route.gate = None
                handler.wfile.write(body[offset:offset + chunk])
                if route.trickle:
                    handler.wfile.flush()
                    time.sleep(route.trickle)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


def write_manifest(path: Path, models: list[dict]) -> Path:
    path.write_text(json.dumps({"schema_version": 1, "models": models}, indent=1))
    return path


def download_entry(name: str, url: str, sha256: str | None, size: int | None) -> dict:
    """A manifest entry for the tiny model served at ``url``."""
    return {"name": name, "task": "tiny test model", "modality": "MRI", "channel_names": ["T1"],
            "labels": {"background": 0, "tumour": 1}, "configuration": "3d_fullres", "folds": [0],
            "licence": "CC0-1.0", "citation": "none", "source": "download",
            "files": [{"url": url, "sha256": sha256, "size": size}]}


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


# Fixtures shared by tests/models and tests/chimerax_ui/test_models.py (import them by name).
@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty per-test cache; online mode; fast retries."""
    root = tmp_path / "cache"
    monkeypatch.setenv("MEDSEG_CACHE_DIR", str(root))
    monkeypatch.delenv("MEDSEG_OFFLINE", raising=False)
    monkeypatch.delenv("MEDSEG_MANIFEST", raising=False)
    monkeypatch.setenv("MEDSEG_DOWNLOAD_TIMEOUT", "5")
    return root


@pytest.fixture
def server():
    srv = ModelServer()
    yield srv
    srv.stop()
