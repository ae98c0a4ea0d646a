"""resolve_model: paths, zips, names, auto-fetch, offline use after a fetch with the server gone."""
from __future__ import annotations

import pytest

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.models.model_folder import open_model_folder
from chimerax.medseg.models.registry import model_statuses, resolve_model
from registry_helpers import MODEL_DIR, tiny_model_folder, zip_bytes, zip_folder


def test_folder_is_returned_as_is(cache, tmp_path):
    folder = tiny_model_folder(tmp_path, weights=10)
    assert resolve_model(str(folder)) == folder


def test_zip_is_unpacked_once_into_the_cache(cache, tmp_path):
    zipped = zip_folder(tiny_model_folder(tmp_path / "m", weights=10), tmp_path / "m.zip")
    first = resolve_model(str(zipped))
    assert first.name == MODEL_DIR.split("/")[1] and first.is_relative_to(cache / "extracted")
    assert open_model_folder(first).configuration_name == "3d_fullres"
    stamp = first.stat().st_mtime_ns
    assert resolve_model(str(zipped)) == first and first.stat().st_mtime_ns == stamp


def test_unsafe_zip_and_missing_paths_are_clear_errors(cache, tmp_path):
    slip = tmp_path / "slip.zip"
    slip.write_bytes(zip_bytes({"../../evil.txt": b"x"}))
    with pytest.raises(MedSegError, match="outside the target"):
        resolve_model(str(slip))
    assert not (tmp_path / "evil.txt").exists() and not (cache / "evil.txt").exists()
    with pytest.raises(MedSegError, match="does not exist"):
        resolve_model(str(tmp_path / "absent.zip"))
    text = tmp_path / "notes.txt"
    text.write_text("x")
    with pytest.raises(MedSegError, match="not a model zip"):
        resolve_model(str(text))


def test_name_not_installed_in_offline_mode_says_how_to_fetch(cache, publish, monkeypatch):
    route = publish()
    with pytest.raises(MedSegError, match="not installed.*medseg models fetch tiny.*segment fetch tiny"):
        resolve_model("tiny", offline=True)
    monkeypatch.setenv("MEDSEG_OFFLINE", "1")
    with pytest.raises(MedSegError, match="offline mode"):
        resolve_model("tiny")
    assert route.requests == []  # offline really means no network


def test_fetched_once_then_usable_offline_with_the_server_stopped(cache, publish, server):
    route = publish()
    fetched = resolve_model("tiny")  # not installed: fetched now
    assert route.requests == [None]
    assert fetched == cache / "models" / "tiny" / MODEL_DIR
    server.stop()
    assert resolve_model("tiny", offline=True) == fetched
    assert resolve_model("tiny") == fetched  # online mode does not touch the network either
    assert open_model_folder(fetched).folds == ["0"]
    assert {s.name: s.status for s in model_statuses()}["tiny"] == "installed"


def test_unknown_name_lists_what_exists(cache, publish):
    publish()
    with pytest.raises(MedSegError, match="Unknown model 'nonesuch'.*available: tiny"):
        resolve_model("nonesuch")


def test_brats_not_yet_fetched_names_the_fetch_command_offline(cache):
    with pytest.raises(MedSegError) as info:
        resolve_model("brats", offline=True)
    message = str(info.value)
    assert "not installed" in message and "medseg models fetch brats" in message and "segment fetch brats" in message
    assert "\n" not in message


def test_brats_installed_by_the_user_is_then_found(cache, tmp_path):
    from chimerax.medseg.models.install import install_model

    install_model("brats", tiny_model_folder(tmp_path, weights=10))
    assert resolve_model("brats", offline=True) == cache / "models" / "brats" / MODEL_DIR
    assert {s.name: s.status for s in model_statuses()}["brats"] == "installed"


def test_embedded_example_model_resolves_offline(cache):
    path = resolve_model("example", offline=True)
    model = open_model_folder(path)
    assert model.folds and (path / "dataset.json").is_file()


def test_fold_all_is_used_only_when_asked_or_alone(tmp_path):
    import shutil
    tiny_model_folder(tmp_path, weights=10)
    folder = tmp_path / MODEL_DIR
    shutil.copytree(folder / "fold_0", folder / "fold_all")
    model = open_model_folder(folder)
    assert sorted(model.folds) == ["0", "all"]
    assert model.select_folds(None) == ["0"]  # nnU-Net's default: the cross-validation folds
    assert model.select_folds(["all"]) == ["all"]
    shutil.rmtree(folder / "fold_0")
    assert open_model_folder(folder).select_folds(None) == ["all"]


def test_a_dataset_id_or_name_finds_its_trained_model(tmp_path, monkeypatch):
    """`-m 990` as `medseg plan 990` / `medseg train 990` take it: the model trained for that dataset."""
    from chimerax.medseg.models.registry import resolve_model
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    model = tmp_path / "Dataset990_Phantoms" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    model.mkdir(parents=True)
    (model / "plans.json").write_text("{}")
    assert resolve_model("990") == model and resolve_model("Dataset990_Phantoms") == model
    second = model.with_name("nnUNetTrainer__nnUNetPlans__2d")
    second.mkdir()
    (second / "plans.json").write_text("{}")
    with pytest.raises(MedSegError, match="several trained models"):
        resolve_model("990")
    with pytest.raises(MedSegError, match="No trained model for dataset 991"):
        resolve_model("991")


def test_a_misspelled_model_name_gets_the_close_match():
    from chimerax.medseg.models.registry import resolve_model
    with pytest.raises(MedSegError, match="Did you mean 'example'"):
        resolve_model("exampel")
