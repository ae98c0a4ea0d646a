"""The shipped manifest is valid and complete; broken manifests give errors naming model and field."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.models.manifest import default_manifest_path, load_manifest, parse_manifest

REPO = Path(__file__).resolve().parents[2]


def test_the_package_manifest_is_the_one_copy(monkeypatch):
    monkeypatch.delenv("MEDSEG_MANIFEST", raising=False)
    assert default_manifest_path().resolve() == (REPO / "src" / "models_manifest.json").resolve()
    assert not (REPO / "models_manifest.json").exists()


def test_shipped_manifest_is_valid_and_describes_every_model(monkeypatch):
    monkeypatch.delenv("MEDSEG_MANIFEST", raising=False)
    manifest = load_manifest()
    models = manifest.models
    assert models["example"].source == "embedded" and models["example"].path == "data/example_model"
    brats = models["brats"]
    assert brats.source == "download" and brats.trainer == "nnUNetTrainerV2BraTSRegions_DA4_BN"
    assert brats.channel_names == ["T1", "T1ce", "T2", "Flair"] and brats.is_region_based
    downloads = [m for m in models.values() if m.source == "download" and m.name.startswith("totalseg")]
    assert len(downloads) >= 4
    for entry in downloads:
        assert entry.licence == "Apache-2.0" and "doi.org" in entry.citation
        for file in entry.files:
            assert file.url.startswith("https://github.com/wasserth/TotalSegmentator/releases/download/")
            assert file.local_name.startswith("Dataset") and file.local_name.endswith(".zip")
    total = models["totalseg_total_3mm"]
    assert len(total.label_names()) == 117 and total.labels["liver"] == 5 and total.channel_names == ["CT"]


def _valid() -> dict:
    return {"schema_version": 1, "models": [{
        "name": "m", "task": "t", "modality": "CT", "channel_names": ["CT"], "labels": {"background": 0, "a": 1},
        "configuration": "3d_fullres", "folds": [0, "all"], "licence": "MIT", "citation": "c", "source": "download",
        "files": [{"url": "https://example.org/m.zip", "sha256": "a" * 64, "size": 10}]}]}


def test_a_valid_manifest_parses():
    entry = parse_manifest(_valid())["m"]
    assert entry.folds == ["0", "all"] and entry.total_size == 10 and entry.files[0].local_name == "m.zip"


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(schema_version=2), "schema_version"),
    (lambda d: d["models"][0].pop("licence"), "missing field.*licence"),
    (lambda d: d["models"][0]["files"][0].update(sha256="XYZ"), "sha256"),
    (lambda d: d["models"][0]["files"][0].update(size=-1), "size"),
    (lambda d: d["models"][0]["files"][0].update(url="ftp://x/y.zip"), "url"),
    (lambda d: d["models"][0]["files"][0].update(filename="../x.zip"), "filename"),
    (lambda d: d["models"][0].update(name="../evil"), "Invalid model name"),
    (lambda d: d["models"][0].update(source="torrent"), "source"),
    (lambda d: d["models"][0].update(files=[]), "at least one file"),
    (lambda d: d["models"][0].update(labels={"a": [1, 2]}), "regions_class_order"),
    (lambda d: d["models"][0].update(labels={"a": -1}), "label 'a'"),
    (lambda d: d["models"][0].update(folds=[]), "folds"),
    (lambda d: d["models"][0].update(source="none", files=[]), "instructions"),
    (lambda d: d["models"][0].update(source="embedded"), "path"),
    (lambda d: d["models"][0].update(source="embedded", path="data/m", files=[]), "at least one file"),
    (lambda d: d["models"][0].update(source="embedded", path="data/m", files=[{"path": "../x", "sha256": "a" * 64,
                                                                                "size": 1}]), "relative path"),
    (lambda d: d["models"][0].update(source="embedded", path="data/m", files=[{"path": "x", "size": 1}]), "sha256"),
    (lambda d: d["models"].append(copy.deepcopy(d["models"][0])), "appears twice"),
])
def test_broken_manifests_name_the_model_and_field(change, message):
    data = _valid()
    change(data)
    with pytest.raises(MedSegError, match=message):
        parse_manifest(data, "test.json")


def test_unreadable_manifest_files(tmp_path, monkeypatch):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(MedSegError, match="not valid JSON"):
        load_manifest(bad)
    monkeypatch.setenv("MEDSEG_MANIFEST", str(tmp_path / "absent.json"))
    with pytest.raises(MedSegError, match="not found"):
        load_manifest()
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_valid()))
    monkeypatch.setenv("MEDSEG_MANIFEST", str(good))
    assert load_manifest().names() == ["m"]


def test_brats_entry_matches_what_the_brats_converter_writes(monkeypatch):
    from chimerax.medseg.datasets import convert_brats
    monkeypatch.delenv("MEDSEG_MANIFEST", raising=False)
    brats = load_manifest().models["brats"]
    assert brats.channel_names == [convert_brats.CHANNEL_NAMES[k] for k in sorted(convert_brats.CHANNEL_NAMES, key=int)]
    assert brats.labels == convert_brats.REGION_LABELS and brats.regions_class_order == [1, 2, 3]


def test_registry_imports_neither_torch_nor_requests():
    import subprocess
    import sys
    code = ("import sys, chimerax.medseg.models.registry, chimerax.medseg.models.cli; "
            "print(sorted(m for m in ('torch', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_example_entry_describes_the_embedded_example_model(monkeypatch):
    from chimerax.medseg.fileio import read_json
    from chimerax.medseg.models.embedded import embedded_path
    monkeypatch.delenv("MEDSEG_MANIFEST", raising=False)
    entry = load_manifest().models["example"]
    dataset = read_json(embedded_path(entry) / "dataset.json")
    channels = dataset["channel_names"]
    assert entry.channel_names == [channels[k] for k in sorted(channels, key=int)]
    assert entry.labels == dataset["labels"]


def test_embedded_model_files_are_checked_against_the_manifest(monkeypatch, tmp_path):
    import dataclasses
    import shutil

    from chimerax.medseg.models.embedded import embedded_path, verify_embedded
    monkeypatch.delenv("MEDSEG_MANIFEST", raising=False)
    entry = load_manifest().models["example"]
    assert verify_embedded(entry) == [] and len(entry.files) >= 3
    assert {f.path for f in entry.files} >= {"dataset.json", "plans.json"}
    copy = tmp_path / "model"
    shutil.copytree(embedded_path(entry), copy)
    moved = dataclasses.replace(entry, path=str(copy))  # an absolute path stands in for the package folder
    assert verify_embedded(moved) == []
    checkpoint = next(f.path for f in entry.files if f.path.endswith(".pth"))
    data = bytearray((copy / checkpoint).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / checkpoint).write_bytes(bytes(data))
    (copy / "plans.json").unlink()
    problems = verify_embedded(moved)
    assert any(checkpoint in p and "SHA-256" in p for p in problems) and any("missing file plans.json" in p
                                                                             for p in problems)
    with pytest.raises(MedSegError, match="damaged"):
        embedded_path(moved)


def test_published_nnunet_v1_models_are_listed_with_v1s_own_addresses(monkeypatch):
    """Addresses as nnunet 1.7.1's download_pretrained_model.py lists them; no checksums are published."""
    monkeypatch.delenv("MEDSEG_MANIFEST", raising=False)
    models = load_manifest().models
    msd = {n: m for n, m in models.items() if n.startswith("msd_")}
    assert len(msd) == 10 and models["msd_lung"].channel_names == ["CT"] and models["msd_lung"].labels["nodule"] == 1
    assert models["msd_lung"].files[0].url == "https://zenodo.org/record/4003545/files/Task006_Lung.zip?download=1"
    brats = [m for n, m in models.items() if n.startswith("brats")]
    assert {m.trainer for m in brats} == {"nnUNetTrainerV2", "nnUNetTrainerV2BraTSRegions_DA3_BN_BD",
                                          "nnUNetTrainerV2BraTSRegions_DA4_BN", "nnUNetTrainerV2BraTSRegions_DA4_BN_BD"}
    assert models["brats"].folds == [str(f) for f in range(15)]
    for entry in list(msd.values()) + brats:
        assert entry.files and all(f.sha256 is None and f.size is None for f in entry.files)  # trust on first use
        assert all(f.url.startswith("https://zenodo.org/record/") for f in entry.files)
        assert "nnU-Net" in entry.citation and "Zenodo" in entry.licence
