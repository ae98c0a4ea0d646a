"""The panel's Python side in headless ChimeraX: the commands its controls send run, and the
state it draws follows (models, channel assignment, progress, result table)."""
from __future__ import annotations

import time

import numpy as np
import pytest
from chimerax.core.errors import UserError

from chimerax.medseg.chimerax_ui.panel import PanelController
from chimerax.medseg.chimerax_ui.volumes import open_image_volumes
from chimerax.medseg.errors import MedSegError
from chimerax.medseg.images import Image, read_case

# The example model's channels are T1, T1ce, T2, Flair; the volumes open in another order.
OPENED = ["case_t2", "case_flair", "case_t1", "case_t1ce"]
CHANNEL_OF = {"case_t1": 0, "case_t1ce": 1, "case_t2": 2, "case_flair": 3}


@pytest.fixture
def opened(session, example_case):
    image = read_case([str(p) for p in example_case])
    channels = [CHANNEL_OF[name] for name in OPENED]
    shuffled = Image(image.array[channels], image.spacing, image.affine)
    return {v.name: v for v in open_image_volumes(session, shuffled, OPENED)}


def test_state_lists_models_volumes_and_channels_matched_by_name(session, opened):
    state = PanelController(session).state()
    example = next(m for m in state["models"] if m["name"] == "example")
    assert example["usable"] and example["status"] == "embedded" and example["size_mb"] > 0
    assert example["channels"] == ["T1", "T1ce", "T2", "Flair"] and example["modality"]
    by_id = {v["id"]: v["name"] for v in state["volumes"]}
    assert [by_id[i] for i in example["assignment"]] == ["case_t1", "case_t1ce", "case_t2", "case_flair"]
    assert {"folds", "device", "fast", "mirroring"} <= set(state["options"])
    assert state["running"] is None and state["result"] is None


def test_run_progress_result_labels_and_save_through_the_panel(session, opened, tmp_path):
    panel = PanelController(session)
    ids = next(m for m in panel.state()["models"] if m["name"] == "example")["assignment"]
    job = panel.run(f"segment example {' '.join('#' + i for i in ids)} device cpu fast true wait false")
    seen_running = []  # every running state past 5 % (the last may be the finished job's, without an estimate)
    while not job.finished:
        state = panel.state()
        if state["running"] and state["running"]["percent"] > 5:
            seen_running.append(state["running"])
        time.sleep(0.05)
    job.wait()
    assert any(s["seconds"] > 0 and s["seconds_left"] is not None for s in seen_running), seen_running
    result = panel.state()["result"]
    assert result["state"] == "done" and result["volume"] == job.label_volume.id_string
    rows = {r["name"]: r for r in result["rows"]}
    assert set(rows) == set(job.request.label_names.values())
    assert all(r["shown"] and r["volume_ml"] > 0 and r["color"].startswith("#") for r in rows.values())
    first = result["rows"][0]["name"]
    panel.run(f'segment labels #{result["volume"]} names "{first}" show false')
    panel.run(f'segment labels #{result["volume"]} names "{first}" color #00ff00')
    after = {r["name"]: r for r in panel.state()["result"]["rows"]}
    assert not after[first]["shown"] and after[first]["color"] == "#00ff00"
    target = tmp_path / "panel.nii.gz"
    panel.run(f"segment save #{result['volume']} {target} format nifti wait true")
    assert target.is_file()


def test_stop_from_the_panel_cancels_and_the_state_says_so(session, opened):
    panel = PanelController(session)
    channels = [opened[name].full_matrix() for name in OPENED]
    image = Image(np.stack(channels).repeat(2, axis=1), (1, 1, 1))  # big enough to stop in time
    volumes = open_image_volumes(session, image, [f"big_{n}" for n in OPENED])
    job = panel.run(f"segment example {' '.join('#' + v.id_string for v in volumes)} device cpu wait false")
    assert panel.state()["running"] is not None
    assert panel.run("segment stop") == 1
    assert job.state == "cancelled" and panel.state()["running"] is None
    assert panel.state()["result"] == {"state": "cancelled"}


def test_panel_runs_only_segment_commands_and_shows_their_errors(session, opened):
    panel = PanelController(session)
    with pytest.raises(MedSegError, match="only sends segment commands"):
        panel.run("close session")
    assert len(session.models) > 0
    with pytest.raises(UserError, match="Unknown model 'nosuchmodel'"):
        panel.run("segment nosuchmodel #1 device cpu")
    assert panel.state()["error"].startswith("Unknown model 'nosuchmodel'")
