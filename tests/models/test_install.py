"""Installing from local zips and folders: zip slip, links, bombs, malicious pickles, atomic replace."""
from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

import pytest

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.models import cache as model_cache
from chimerax.medseg.models.archive import safe_extract_zip
from chimerax.medseg.models.install import install_model, remove_model, verify_model
from registry_helpers import MODEL_DIR, Exploit, tiny_model_folder, zip_bytes, zip_folder


def _models_dir_entries(cache: Path) -> list[str]:
    root = cache / "models"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


@pytest.fixture
def model_folder(tmp_path):
    return tiny_model_folder(tmp_path / "src", weights=1000)


def test_install_from_zip_and_from_folder(cache, tmp_path, model_folder):
    zipped = zip_folder(model_folder, tmp_path / "m.zip")
    from_zip = install_model("from_zip", zipped)
    from_folder = install_model("from_folder", model_folder)
    for path in (from_zip, from_folder):
        assert (path / MODEL_DIR / "fold_0" / "checkpoint_final.pth").is_file()
    assert verify_model("from_zip") == [] and verify_model("from_folder") == []
    assert model_cache.installed_names() == ["from_folder", "from_zip"]


def test_install_twice_needs_force_and_force_replaces_whole(cache, tmp_path, model_folder):
    install_model("m", model_folder)
    with pytest.raises(MedSegError, match="already installed"):
        install_model("m", model_folder)
    other = tiny_model_folder(tmp_path / "other", weights=2000)
    (other / MODEL_DIR.split("/", 1)[1] / "README.txt").write_text("second version")
    install_model("m", other, force=True)
    assert (cache / "models" / "m" / MODEL_DIR / "README.txt").read_text() == "second version"
    assert verify_model("m") == []
    assert _models_dir_entries(cache) == ["m"]  # no staging or trash folders left


def test_remove_makes_the_model_disappear(cache, model_folder):
    install_model("m", model_folder)
    remove_model("m")
    assert not model_cache.is_installed("m") and _models_dir_entries(cache) == []
    with pytest.raises(MedSegError, match="not installed"):
        remove_model("m")


def test_verify_reports_changed_missing_and_extra_files(cache, model_folder):
    path = install_model("m", model_folder)
    checkpoint = path / MODEL_DIR / "fold_0" / "checkpoint_final.pth"
    data = bytearray(checkpoint.read_bytes())
    data[-100] ^= 0xFF
    checkpoint.write_bytes(bytes(data))
    (path / MODEL_DIR / "dataset.json").unlink()
    (path / "stray.txt").write_text("x")
    problems = verify_model("m")
    assert any("checkpoint_final.pth has changed" in p for p in problems)
    assert any("missing file" in p and "dataset.json" in p for p in problems)
    assert any("unexpected file stray.txt" in p for p in problems)
    assert verify_model("never_installed") == ["never_installed: not installed"]


@pytest.mark.parametrize("member", ["../evil.txt", "/tmp/medseg_evil.txt", "a/../../evil.txt", "..\\evil.txt", "C:/evil.txt"])
def test_zip_slip_members_are_refused_and_nothing_is_written(cache, tmp_path, member):
    bad = tmp_path / "slip.zip"
    bad.write_bytes(zip_bytes({"Dataset901_Tiny/ok.txt": b"fine", member: b"owned"}))
    with pytest.raises(MedSegError, match="absolute path|outside the target"):
        install_model("slip", bad)
    assert not (tmp_path / "evil.txt").exists() and not (cache / "evil.txt").exists()
    assert not Path("/tmp/medseg_evil.txt").exists()
    assert _models_dir_entries(cache) == []


def _zip_with_symlink(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("Dataset901_Tiny/ok.txt", b"fine")
        link = zipfile.ZipInfo("Dataset901_Tiny/link")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    return path


def test_symlink_members_are_refused(cache, tmp_path):
    with pytest.raises(MedSegError, match="link"):
        install_model("links", _zip_with_symlink(tmp_path / "link.zip"))
    assert _models_dir_entries(cache) == []


def test_folder_with_a_symlink_is_refused(cache, tmp_path, model_folder):
    os.symlink("/etc/passwd", model_folder / "passwd")
    with pytest.raises(MedSegError, match="symbolic link"):
        install_model("links", model_folder)
    assert _models_dir_entries(cache) == []


def test_zip_bombs_are_refused_before_writing(tmp_path, monkeypatch):
    # A member that claims ~1000x expansion, and an archive over the total-size limit.
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(zip_bytes({"zeros.bin": bytes(8 * 1024**2)}))  # deflate packs zeros ~1030:1
    assert bomb.stat().st_size < 10_000
    with pytest.raises(MedSegError, match="zip bomb"):
        safe_extract_zip(bomb, tmp_path / "out")
    monkeypatch.setenv("MEDSEG_MAX_UNZIPPED_BYTES", str(1024**2))
    big = tmp_path / "big.zip"
    big.write_bytes(zip_bytes({"a.bin": os.urandom(700_000), "b.bin": os.urandom(700_000)}))
    with pytest.raises(MedSegError, match="more than"):
        safe_extract_zip(big, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.zip", "bomb.zip"]  # no staging folder left


def test_member_lying_about_its_size_is_refused(tmp_path):
    good = zip_bytes({"data.bin": b"A" * 10_000})
    # Rewrite the declared uncompressed size (local header and central directory) to 100 bytes.
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        info = zf.infolist()[0]
    lying = bytearray(good)
    size_bytes = (10_000).to_bytes(4, "little")
    count = 0
    start = 0
    while (pos := lying.find(size_bytes, start)) != -1:
        lying[pos:pos + 4] = (100).to_bytes(4, "little")
        count += 1
        start = pos + 4
    assert count == 2 and info.file_size == 10_000
    path = tmp_path / "lying.zip"
    path.write_bytes(bytes(lying))
    with pytest.raises(MedSegError, match="declared size|damaged"):
        safe_extract_zip(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_safe_extract_refuses_a_non_empty_target_and_garbage(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_bytes({"x.txt": b"x"}))
    with pytest.raises(MedSegError, match="not empty"):
        safe_extract_zip(archive, target)
    assert (target / "keep.txt").read_text() == "mine"
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(MedSegError, match="not a readable zip"):
        safe_extract_zip(junk, tmp_path / "other")
    safe_extract_zip(archive, tmp_path / "fresh")
    assert (tmp_path / "fresh" / "x.txt").read_text() == "x"


def test_checkpoint_with_a_malicious_pickle_is_refused_and_never_runs(cache, tmp_path):
    marker = tmp_path / "pwned"
    evil = tiny_model_folder(tmp_path / "evil", payload=Exploit(marker), weights=10)
    with pytest.raises(MedSegError, match="could run code"):
        install_model("evil", zip_folder(evil, tmp_path / "evil.zip"))
    with pytest.raises(MedSegError, match="could run code"):
        install_model("evil", evil)
    assert not marker.exists()
    assert _models_dir_entries(cache) == []


def test_folder_that_is_not_a_model_is_refused(cache, tmp_path):
    folder = tmp_path / "notamodel"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello")
    with pytest.raises(MedSegError, match="not an nnU-Net model"):
        install_model("x", folder)
    no_checkpoint = tiny_model_folder(tmp_path / "nock", weights=10)
    (no_checkpoint / MODEL_DIR.split("/", 1)[1] / "fold_0" / "checkpoint_final.pth").unlink()
    with pytest.raises(MedSegError, match="no fold_"):
        install_model("x", no_checkpoint)
    with pytest.raises(MedSegError, match="does not exist"):
        install_model("x", tmp_path / "absent")
    with pytest.raises(MedSegError, match="Invalid model name"):
        install_model("../x", folder)
    assert _models_dir_entries(cache) == []
