"""``segment models|fetch|install|remove|verify`` in real headless ChimeraX, against a real local HTTP server."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from registry_helpers import (MODEL_DIR, Exploit, cache, download_entry, server,  # noqa: E402,F401 (fixtures)
                              sha256_bytes, tiny_model_folder, write_manifest, zip_bytes, zip_folder)


def _serve(server, tmp_path, monkeypatch, name: str, data: bytes, sha: str | None = None):
    route = server.add(f"{name}.zip", data)
    manifest = write_manifest(tmp_path / "manifest.json",
                              [download_entry(name, server.url(f"{name}.zip"), sha or sha256_bytes(data), len(data))])
    monkeypatch.setenv("MEDSEG_MANIFEST", str(manifest))
    return route


def _tiny_zip(tmp_path, **kw) -> bytes:
    return zip_folder(tiny_model_folder(tmp_path / "m", **kw), tmp_path / "m.zip").read_bytes()


def test_segment_models_lists_the_manifest(cache, run, log):
    names = run("segment models")
    assert {"example", "brats", "totalseg_total_3mm"} <= set(names)
    text = log.text()
    assert "embedded" in text and "available" in text and "Apache-2.0" in text and "4.9 MB" in text


def test_segment_fetch_reports_progress_and_installs(cache, server, tmp_path, monkeypatch, run, log):
    route = _serve(server, tmp_path, monkeypatch, "tiny", _tiny_zip(tmp_path, weights=200_000))
    run("segment fetch tiny")
    assert route.requests == [None]
    assert any(s.startswith("Fetching tiny:") and "%" in s for s in log.statuses)
    assert "Fetching tiny: 100%" in " ".join(log.statuses)
    assert "Model tiny is installed in" in log.text()
    assert (cache / "models" / "tiny" / MODEL_DIR / "fold_0" / "checkpoint_final.pth").is_file()
    assert run("segment verify tiny") == []
    log.clear()
    run("segment models")
    assert "installed" in log.text()
    run("segment remove tiny")
    assert not (cache / "models" / "tiny").exists()


def test_segment_fetch_in_the_background_finishes_and_logs(cache, server, tmp_path, monkeypatch, run, log):
    _serve(server, tmp_path, monkeypatch, "tiny", _tiny_zip(tmp_path, weights=10))
    task = run("segment fetch tiny wait false")
    task.wait(60)
    assert task.error is None and "Model tiny is installed in" in log.text()


def test_segment_fetch_refuses_wrong_bytes_and_installs_nothing(cache, server, tmp_path, monkeypatch, run):
    from chimerax.core.errors import UserError
    data = _tiny_zip(tmp_path, weights=10)
    _serve(server, tmp_path, monkeypatch, "tiny", data, sha="0" * 64)
    with pytest.raises(UserError, match="Checksum mismatch"):
        run("segment fetch tiny")
    assert not (cache / "models" / "tiny").exists()
    assert list((cache / "downloads").iterdir()) == []


def test_segment_install_refuses_zip_slip_and_malicious_pickles(cache, tmp_path, run):
    from chimerax.core.errors import UserError
    slip = tmp_path / "slip.zip"
    slip.write_bytes(zip_bytes({"Dataset1_X/ok.txt": b"ok", "../../escaped.txt": b"x"}))
    with pytest.raises(UserError, match="outside the target"):
        run(f"segment install slip {slip}")
    marker = tmp_path / "pwned"
    evil = zip_folder(tiny_model_folder(tmp_path / "evil", payload=Exploit(marker), weights=10), tmp_path / "evil.zip")
    with pytest.raises(UserError, match="could run code"):
        run(f"segment install evil {evil}")
    assert not marker.exists() and not (tmp_path / "escaped.txt").exists()
    assert not (cache / "models").exists() or list((cache / "models").iterdir()) == []


def test_segment_brats_explains_how_to_get_a_model(cache, run, add_volume):
    import numpy as np
    from chimerax.core.errors import UserError
    volume = add_volume(np.zeros((4, 5, 6), np.float32), name="flair")
    with pytest.raises(UserError) as info:
        run(f"segment brats #{volume.id_string}")
    message = str(info.value)
    assert "not installed" in message and "segment fetch brats" in message


def test_segment_brats_with_a_v1_brats_region_model(cache, run, log, session):
    """`segment brats #1-4` end to end with a model in nnU-Net v1's published layout (a BraTS-region
    `_BN` model made by nnunet 1.7.1): channels matched by name in any order, region surfaces named."""
    from chimerax.medseg.chimerax_ui.volumes import open_image_volumes
    from chimerax.medseg.images import read_case
    v1 = REPO / "tests" / "data" / "nnunet_v1"
    run(f"segment install brats {v1 / 'Task901_V1BraTS.zip'}")
    cases = v1 / "Task901_V1BraTS" / "cases"
    order = {"FLAIR": 3, "T1ce": 1, "T1": 0, "T2": 2}  # opened in another order than the model's
    volumes = []
    for name, channel in order.items():
        image = read_case([cases / f"aniso_{channel:04d}.nii.gz"])
        volumes += open_image_volumes(session, image, [f"case_{name.lower()}"])
    first = min(int(v.id_string) for v in volumes)
    job = run(f"segment brats #{first}-{first + 3} device cpu")
    text = log.text()
    ids = {name: v.id_string for name, v in zip(order, volumes)}
    assert (f"Channels matched by name: T1 = #{ids['T1']}, T1ce = #{ids['T1ce']}, T2 = #{ids['T2']}, "
            f"FLAIR = #{ids['FLAIR']}") in text
    surfaces = sorted(m.name for m in job.models[1:])
    assert surfaces == sorted(["whole tumour", "tumour core", "enhancing tumour"])
    assert "Voxels" in text and "enhancing tumour" in text  # the label table
    # installed under the manifest's name: BraTS's own values (2 edema, 1 necrosis, 4 enhancing), as
    # nnunet 1.7.1's labels for this case mapped with the manifest's mapping
    import numpy as np
    from chimerax.medseg.images import read_image
    from chimerax.medseg.inference.label_values import apply_output_values
    from chimerax.medseg.models.manifest import load_manifest
    mapping = load_manifest().models["brats"].output_label_values
    v1 = read_image(v1 / "Task901_V1BraTS" / "v1_outputs" / "folds_0_mirror" / "aniso.nii.gz").array[0]
    expected = apply_output_values(v1.astype(np.uint8), mapping)
    assert (np.asarray(job.labels) == expected).mean() > 0.999 and 4 in np.unique(job.labels)
    assert job.label_volume.medseg_label_members[4] == (4,)  # enhancing tumour, by its written value
    training = run(f"segment brats #{first}-{first + 3} device cpu trainingLabelValues true surfaces false")
    assert (np.asarray(training.labels) == v1).mean() > 0.999


def test_fetched_model_segments_offline_with_the_server_gone(cache, server, tmp_path, monkeypatch, run, log,
                                                             add_volume, example_model, example_case):
    """The whole promise: fetch once (verified), then segment with no network at all."""
    import nibabel as nib
    import numpy as np
    data = zip_folder(example_model, tmp_path / "example.zip").read_bytes()
    route = _serve(server, tmp_path, monkeypatch, "served_example", data)
    run("segment fetch served_example")
    assert route.requests == [None]
    server.stop()
    monkeypatch.setenv("MEDSEG_OFFLINE", "1")
    volumes = []
    for path in example_case:  # one volume per channel (T1, T1ce, T2, Flair)
        image = nib.load(str(path))
        array = np.asarray(image.dataobj, np.float32).transpose(2, 1, 0)  # (x, y, z) -> (z, y, x)
        volumes.append(add_volume(array, step=image.header.get_zooms()[:3], name=path.name))
    job = run(f"segment served_example {' '.join('#' + v.id_string for v in volumes)} surfaces false")
    assert job.state == "done", log.text()
    assert job.labels.shape == array.shape and job.labels.max() > 0


def test_segment_verify_checks_the_embedded_model(cache, monkeypatch, run, log):
    monkeypatch.delenv("MEDSEG_MANIFEST", raising=False)
    assert run("segment verify example") == []
    assert "Model example: ok" in log.text()
