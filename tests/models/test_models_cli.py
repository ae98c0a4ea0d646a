"""``medseg models list|fetch|install|remove|verify`` through the real command-line entry point."""
from __future__ import annotations

import os
import subprocess
import sys

from chimerax.medseg.cli import main
from registry_helpers import MODEL_DIR, tiny_model_folder, zip_folder


def test_fetch_list_verify_remove(cache, publish, capsys):
    publish()
    assert main(["models", "fetch", "tiny"]) == 0
    out = capsys.readouterr()
    assert f"tiny: installed in {cache / 'models' / 'tiny'}" in out.out
    assert "Fetching tiny [" in out.err  # the text progress bar
    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert any(line.split()[:2] == ["tiny", "installed"] for line in listing.splitlines())
    assert main(["models", "verify"]) == 0
    assert "ok     tiny" in capsys.readouterr().out
    assert main(["models", "remove", "tiny"]) == 0
    assert not (cache / "models" / "tiny").exists()


def test_verify_fails_for_a_damaged_install(cache, tmp_path, capsys):
    assert main(["models", "install", "mine", str(tiny_model_folder(tmp_path, weights=10))]) == 0
    (cache / "models" / "mine" / MODEL_DIR / "plans.json").write_text("{}")
    assert main(["models", "verify", "mine"]) == 1
    captured = capsys.readouterr()
    assert "FAILED mine: " in captured.out and "plans.json has changed" in captured.out
    assert "failed verification" in captured.err


def test_errors_are_one_line_without_traceback(cache, publish):
    publish(status=404)
    env = dict(os.environ)
    result = subprocess.run([sys.executable, "-m", "chimerax.medseg.cli", "models", "fetch", "tiny"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("medseg: error:")]
    assert len(errors) == 1 and "The server has no file at" in errors[0] and "HTTP 404" in errors[0]
    assert "Traceback" not in result.stderr


def test_offline_flag_forbids_the_download(cache, publish, capsys):
    route = publish()
    assert main(["models", "fetch", "tiny", "--offline"]) == 1
    assert "offline mode" in capsys.readouterr().err and route.requests == []


def test_install_zip_from_the_command_line(cache, tmp_path, capsys):
    zipped = zip_folder(tiny_model_folder(tmp_path / "m", weights=10), tmp_path / "m.zip")
    assert main(["models", "install", "zipped", str(zipped)]) == 0
    assert (cache / "models" / "zipped" / MODEL_DIR / "fold_0" / "checkpoint_final.pth").is_file()
    assert main(["models", "install", "zipped", str(zipped)]) == 1
    assert "already installed" in capsys.readouterr().err
    assert main(["models", "install", "--force", "zipped", str(zipped)]) == 0


def test_verify_checks_the_embedded_model_too(cache, monkeypatch, capsys):
    monkeypatch.delenv("MEDSEG_MANIFEST", raising=False)  # the shipped manifest, with its SHA-256 list
    assert main(["models", "verify"]) == 0
    assert "ok     example" in capsys.readouterr().out
