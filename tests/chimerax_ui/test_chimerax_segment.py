"""``segment MODEL VOLUMES`` in real headless ChimeraX with the embedded example model."""
from __future__ import annotations

import json
import re
import shutil
import time

import numpy as np
import pytest
from chimerax_helpers import rotation_matrix

OPTIONS = "device cpu fast true"  # the same settings as `medseg predict --device cpu --fast`


def _open_case(session, paths, rotation=None, origin=None):
    """Open the example case's channels as volumes (optionally turned and moved)."""
    from chimerax.medseg.chimerax_ui.volumes import open_image_volumes
    from chimerax.medseg.images import read_case
    image = read_case([str(p) for p in paths])
    if rotation is not None:
        image.affine[:3, :3] = rotation @ image.affine[:3, :3]
    if origin is not None:
        image.affine[:3, 3] = origin
    names = [p.name.split(".")[0] for p in paths]
    return image, open_image_volumes(session, image, names)


def _spec(volumes) -> str:
    return ",".join(v.id_string for v in volumes).join(("#", ""))


@pytest.fixture(scope="module")
def cli_labels(example_model, example_case, tmp_path_factory):
    """Labels written by `medseg predict` for the example case (the reference to match)."""
    import nibabel as nib
    from chimerax.medseg.cli import main
    out = tmp_path_factory.mktemp("predict") / "case.nii.gz"
    args = ["predict", "-m", str(example_model), "-i", *map(str, example_case), "-o", str(out),
            "--device", "cpu", "--fast", "--quiet"]
    assert main(args) == 0
    return np.asarray(nib.load(str(out)).dataobj).astype(np.int64).transpose(2, 1, 0)  # (z, y, x)


def _label_volume(job):
    return job.models[0]


def _assert_same_grid(label_volume, volume):
    a, b = label_volume.data, volume.data
    assert tuple(a.size) == tuple(b.size)
    np.testing.assert_allclose(a.origin, b.origin)
    np.testing.assert_allclose(a.step, b.step)
    np.testing.assert_allclose(a.rotation, b.rotation, atol=1e-12)
    np.testing.assert_allclose(label_volume.scene_position.matrix, volume.scene_position.matrix)


def _assert_surfaces_on_labels(job):
    """Every surface vertex lies within its label's voxels (+- one voxel), in scene coordinates."""
    from chimerax.medseg.chimerax_ui.volumes import grid_to_scene
    volume = _label_volume(job)
    labels = volume.full_matrix()
    to_ijk = np.linalg.inv(grid_to_scene(volume))
    surfaces = job.models[1:]
    assert surfaces, "no surfaces were made"
    for surface in surfaces:
        value = surface.medseg_label_value
        k, j, i = np.nonzero(labels == value)
        lo, hi = np.array([i.min(), j.min(), k.min()]) - 1.0, np.array([i.max(), j.max(), k.max()]) + 1.0
        scene = surface.scene_position.transform_points(surface.vertices)
        ijk = scene @ to_ijk[:3, :3].T + to_ijk[:3, 3]
        assert (ijk >= lo).all() and (ijk <= hi).all(), f"surface {surface.name} leaves its label's region"


def _table_rows(log) -> list[tuple[int, str, int, float]]:
    html = next(m.text for m in reversed(log.messages) if m.is_html and "Voxels" in m.text)
    rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td><td>.*?</td><td[^>]*>(\d+)</td><td[^>]*>([\d.]+)</td></tr>",
                      html)
    return [(int(v), n, int(c), float(mm3)) for v, n, c, mm3 in rows]


def test_labels_match_medseg_predict_on_the_input_grid(session, run, log, example_model, example_case,
                                                       cli_labels):
    from chimerax.medseg.chimerax_ui.volumes import label_colors
    from chimerax.medseg.models.model_folder import open_model_folder
    image, volumes = _open_case(session, example_case)
    job = run(f"segment {example_model} {_spec(volumes)} {OPTIONS}")
    assert job.state == "done"
    volume = _label_volume(job)
    _assert_same_grid(volume, volumes[0])
    np.testing.assert_array_equal(volume.full_matrix(), cli_labels)
    _assert_surfaces_on_labels(job)

    folder = open_model_folder(example_model)
    names, colors = folder.labels.names, label_colors(folder.labels.names, folder.dataset_json)
    present = {int(v) for v in np.unique(cli_labels) if v}
    assert {s.name for s in job.models[1:]} == {names[v] for v in present}
    for surface in job.models[1:]:
        assert tuple(surface.color) == colors[surface.medseg_label_value]
    voxel_mm3 = float(np.prod(np.abs(volumes[0].data.step)))
    members = folder.labels.members()  # a region counts every value it spans (whole tumour = 1, 2, 3)
    counts = {v: int(np.isin(cli_labels, members[v]).sum()) for v in names}
    assert _table_rows(log) == [(v, names[v], counts[v], round(counts[v] * voxel_mm3, 1)) for v in sorted(names)]
    assert folder.labels.is_region_based and counts[1] == int((cli_labels > 0).sum())  # the example: BraTS regions
    assert any("%" in s for s in log.statuses), "no progress in the status line"


def test_adaptive_true_matches_medseg_predict_adaptive_and_logs_its_passes(session, run, log, example_model,
                                                                          example_case, tmp_path):
    import nibabel as nib
    from chimerax.medseg.cli import main
    out = tmp_path / "case.nii.gz"
    assert main(["predict", "-m", str(example_model), "-i", *map(str, example_case), "-o", str(out),
                 "--device", "cpu", "--adaptive", "--quiet"]) == 0
    expected = np.asarray(nib.load(str(out)).dataobj).astype(np.int64).transpose(2, 1, 0)  # (z, y, x)
    _, volumes = _open_case(session, example_case)
    job = run(f"segment {example_model} {_spec(volumes)} device cpu adaptive true")
    assert job.state == "done"
    np.testing.assert_array_equal(_label_volume(job).full_matrix(), expected)
    line = next(m.text for m in reversed(log.messages) if "Adaptive ensembling ran" in m.text)
    assert re.search(r"ran \d+ of \d+ forward passes \(\d\.\d\dx\); of \d+ tiles, \d+ ran", line), line


def test_rotated_input_gives_labels_on_its_own_grid(session, run, example_model, example_case, cli_labels):
    rotation = rotation_matrix((1, 2, 3), 40)
    image, volumes = _open_case(session, example_case, rotation=rotation, origin=(30.0, -12.5, 7.0))
    job = run(f"segment {example_model} {_spec(volumes)} {OPTIONS} name turned")
    volume = _label_volume(job)
    assert volume.name == "turned"
    _assert_same_grid(volume, volumes[0])
    directions = image.affine[:3, :3] / np.linalg.norm(image.affine[:3, :3], axis=0)  # the case's own tilt, turned
    np.testing.assert_allclose(np.array(volume.data.rotation), directions, atol=1e-6)
    np.testing.assert_array_equal(volume.full_matrix(), cli_labels)  # geometry moves, voxels do not
    _assert_surfaces_on_labels(job)


def test_colours_from_dataset_json_and_no_surfaces(session, run, example_model, example_case, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(example_model, model)
    dataset = json.loads((model / "dataset.json").read_text())
    first_label = next(name for name, value in dataset["labels"].items() if value not in (0, [0]))
    dataset["label_colors"] = {first_label: "#ff8000"}
    (model / "dataset.json").write_text(json.dumps(dataset))
    _, volumes = _open_case(session, example_case)
    job = run(f"segment {model} {_spec(volumes)} {OPTIONS} surfaces false")
    assert len(job.models) == 1
    volume = job.models[0]
    value = dataset["labels"][first_label]
    value = value[0] if isinstance(value, list) else value
    assert tuple(volume.segment_colors[value]) == (255, 128, 0, 255)
    assert volume.medseg_label_names[value] == first_label


@pytest.mark.parametrize("make_command, message", [
    (lambda m, v: f"segment no_such_model_xyz {v}", "no_such_model_xyz"),
    (lambda m, v: f"segment {m} {v},EXTRA", "channel"),                 # one volume too many
    (lambda m, v: f"segment {m} #99", "No volume given"),
    (lambda m, v: f"segment {m} {v} device cuda", "cuda"),
    (lambda m, v: f"segment {m} {v} device tpu", "device"),
    (lambda m, v: f"segment {m} {v} step 1.5", "step"),
    (lambda m, v: f"segment {m} {v} folds 7", "fold"),
])
def test_user_mistakes_are_user_errors_and_add_nothing(session, run, example_model, example_case,
                                                       make_command, message):
    from chimerax.core.errors import UserError
    _, volumes = _open_case(session, example_case)
    extra = session.models.list()[-1].id[0] + 1
    _open_case(session, example_case[:1])  # one more volume, #EXTRA
    before = list(session.models)
    with pytest.raises(UserError, match=re.compile(message, re.I)) as info:
        run(make_command(example_model, _spec(volumes)).replace("EXTRA", str(extra)))
    assert "Traceback" not in str(info.value)
    assert list(session.models) == before


def test_wrong_channel_count_lists_the_expected_channels(session, run, example_model, example_case):
    from chimerax.core.errors import UserError
    from chimerax.medseg.models.model_folder import open_model_folder
    _, volumes = _open_case(session, example_case)
    channels = open_model_folder(example_model).channel_names
    _, more = _open_case(session, example_case[:1])
    spec = _spec(volumes) + "," + more[0].id_string
    with pytest.raises(UserError) as info:
        run(f"segment {example_model} {spec}")
    assert all(c in str(info.value) for c in channels)


def test_stop_cancels_cleanly_while_chimerax_stays_responsive(session, run, log, example_model, example_case):
    from chimerax.medseg.chimerax_ui.volumes import open_image_volumes
    from chimerax.medseg.images import Image, read_case
    image = read_case([str(p) for p in example_case])
    big = Image(np.tile(image.array, (1, 2, 3, 3)), image.spacing, image.affine)  # slow enough to stop
    volumes = open_image_volumes(session, big, [f"big{c}" for c in range(big.num_channels)])
    before = list(session.models)
    start = time.perf_counter()
    job = run(f"segment {example_model} {_spec(volumes)} device cpu mirroring true wait false")
    assert time.perf_counter() - start < 5 and not job.finished  # the command returned, work goes on
    assert run("segment stop") == 1
    assert job.finished and job.state == "cancelled"
    assert list(session.models) == before
    assert "stopped; no models were added" in log.text()
    assert run("segment stop") == 0  # nothing left running


def test_evaluate_scores_a_region_model_by_regions(session, run, example_model, example_case):
    """Whole tumour is labels 1-3 in both maps, not label 1 alone (BraTS scoring)."""
    from chimerax.medseg.chimerax_ui.volumes import open_image_volumes
    from chimerax.medseg.images import read_case
    from chimerax.medseg.models.model_folder import open_model_folder
    _, volumes = _open_case(session, example_case)
    job = run(f"segment {example_model} {_spec(volumes)} {OPTIONS} name scored")
    truth = read_case([str(example_case[0].parent / "ground_truth.nii.gz")])
    (reference,) = open_image_volumes(session, truth, ["truth"])
    ev = run(f"segment evaluate #{_label_volume(job).id_string} reference #{reference.id_string}")
    labels, gt = job.labels, truth.array[0].astype(np.int64)
    scheme = open_model_folder(example_model).labels
    for value, members in scheme.members().items():
        a, b = np.isin(labels, members), np.isin(gt, members)
        expected = 2 * (a & b).sum() / (a.sum() + b.sum())
        row = next(r for r in ev.rows if r["label"] == scheme.names[value])
        assert row["dice"] == pytest.approx(expected, abs=1e-9)
    assert min(r["dice"] for r in ev.rows) > 0.8  # the demo model finds every region of its case
