"""Fetching `totalseg_total` (five part zips, no SHA-256 published) from a real HTTP server on 127.0.0.1:
one install, every hash recorded on first download, read back as one multi-part model; --roi-subset fetches
the 6 mm crop model by name."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from registry_helpers import sha256_bytes, write_manifest, zip_folder

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.inference.conventions import ConventionPredictor, open_predictor, predictor_for
from chimerax.medseg.inference.options import PredictOptions
from chimerax.medseg.models import cache as model_cache
from chimerax.medseg.models.manifest import default_manifest_path
from chimerax.medseg.models.multipart import open_any_model
from chimerax.medseg.models.registry import resolve_model

WEIGHTS = Path(__file__).resolve().parents[1] / "data" / "totalseg" / "weights"


def _serve(server, tmp_path, monkeypatch) -> dict[str, bytes]:
    """Zips of the fixture parts on the server, and a manifest whose TotalSegmentator entries point there."""
    served = {}
    for folder in WEIGHTS.iterdir():
        data = zip_folder(folder, tmp_path / f"{folder.name}.zip").read_bytes()
        server.add(f"{folder.name}.zip", data)
        served[folder.name] = data
    raw = json.loads(default_manifest_path().read_text(encoding="utf-8"))
    entries = [copy.deepcopy(m) for m in raw["models"] if m["name"] in ("totalseg_total", "totalseg_total_6mm")]
    for entry in entries:
        for file, dataset in zip(entry["files"], entry["conventions"]["datasets"]):
            file["url"] = server.url(f"{dataset}.zip")
            assert file["sha256"] is None  # TotalSegmentator publishes none
    monkeypatch.setenv("MEDSEG_MANIFEST", str(write_manifest(tmp_path / "manifest.json", entries)))
    return served


def test_fetch_installs_every_part_and_records_their_hashes(cache, server, tmp_path, monkeypatch):
    served = _serve(server, tmp_path, monkeypatch)
    notes: list[str] = []
    root = resolve_model("totalseg_total", notify=notes.append)
    recorded = json.loads((cache / "recorded_sha256.json").read_text())
    parts = [name for name in served if not name.startswith("Dataset298")]
    assert {info["sha256"] for info in recorded.values()} == {sha256_bytes(served[p]) for p in parts}
    assert sum("no SHA-256 is published" in n for n in notes) == 5
    predictor = open_predictor(root, PredictOptions(device="cpu").validate())
    assert isinstance(predictor, ConventionPredictor) and len(predictor.parts) == 5
    assert not model_cache.is_installed("totalseg_total_6mm")
    with pytest.raises(MedSegError, match="totalseg_total_6mm.*not installed"):  # ChimeraX's segment never downloads
        predictor_for(open_any_model(root), PredictOptions(device="cpu", roi_subset=["liver"]).validate())

    subset = open_predictor(root, PredictOptions(device="cpu", roi_subset=["liver"]).validate())
    assert model_cache.is_installed("totalseg_total_6mm")  # the crop model, fetched by its name
    assert len(subset.parts) == 1 and subset.crop_predictor is not None
