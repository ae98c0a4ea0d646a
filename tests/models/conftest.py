"""Fixtures for the model registry tests: an isolated cache, a real HTTP server, tiny models."""
from __future__ import annotations

import pytest

from registry_helpers import (cache, download_entry, server, sha256_bytes, tiny_model_folder,  # noqa: F401 (fixtures)
                              write_manifest, zip_folder)


@pytest.fixture(scope="session")
def model_zip_bytes(tmp_path_factory) -> bytes:
    """A genuine tiny nnU-Net model zip (about 600 KB, incompressible)."""
    root = tmp_path_factory.mktemp("model")
    folder = tiny_model_folder(root)
    return zip_folder(folder, root / "tiny.zip").read_bytes()


@pytest.fixture
def publish(server, tmp_path, monkeypatch, model_zip_bytes):
    """publish(name, data=model zip, sha=True, size=True, **behaviour) -> Route; writes the manifest."""
    entries = []

    def _publish(name="tiny", data=None, sha=True, size=True, **behaviour):
        data = model_zip_bytes if data is None else data
        route = server.add(f"{name}.zip", data, **behaviour)
        sha_value = sha256_bytes(model_zip_bytes) if sha is True else (sha or None)
        size_value = len(model_zip_bytes) if size is True else (size or None)
        entries.append(download_entry(name, server.url(f"{name}.zip"), sha_value, size_value))
        path = write_manifest(tmp_path / "manifest.json", entries)
        monkeypatch.setenv("MEDSEG_MANIFEST", str(path))
        return route
    return _publish
