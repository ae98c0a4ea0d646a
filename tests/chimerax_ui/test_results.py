"""``segment save`` and ``segment labels`` in headless ChimeraX, on the example model's result."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from chimerax.core.errors import UserError

from chimerax.medseg.chimerax_ui.volumes import grid_to_scene, open_image_volumes
from chimerax.medseg.images import read_case


@pytest.fixture
def segmented(session, run, example_model, example_case):
    image = read_case([str(p) for p in example_case])
    volumes = open_image_volumes(session, image, [p.name.split(".")[0] for p in example_case])
    job = run(f"segment {example_model} {' '.join('#' + v.id_string for v in volumes)} device cpu fast true")
    return image, job


def test_save_nifti_writes_the_labels_on_the_input_grid(segmented, run, tmp_path, log):
    image, job = segmented
    target = tmp_path / "out" / "labels.nii.gz"
    run(f"segment save #{job.label_volume.id_string} {target}")
    saved = nib.load(str(target))
    np.testing.assert_array_equal(np.asarray(saved.dataobj).transpose(2, 1, 0), job.labels)
    np.testing.assert_allclose(saved.affine, image.affine, atol=1e-5)
    np.testing.assert_allclose(grid_to_scene(job.label_volume), image.affine, atol=1e-5)
    assert f"Saved label volume #{job.label_volume.id_string} as nifti" in log.text()


def test_segment_saves_on_any_run_with_save(session, run, example_model, example_case, tmp_path):
    image = read_case([str(p) for p in example_case])
    volumes = open_image_volumes(session, image, ["a", "b", "c", "d"])
    target = tmp_path / "run.nii.gz"
    job = run(f"segment {example_model} {' '.join('#' + v.id_string for v in volumes)} device cpu fast true "
              f"save {target}")
    np.testing.assert_array_equal(np.asarray(nib.load(str(target)).dataobj).transpose(2, 1, 0), job.labels)


@pytest.mark.parametrize("path, extra, message", [
    ("labels.txt", "", "Cannot tell the format"),
    ("labels.dcm", "", "not segmented from a DICOM series"),
    ("labels.nii.gz", "format dicom-seg", "not segmented from a DICOM series"),
])
def test_save_refuses_what_it_cannot_write_and_writes_nothing(segmented, run, tmp_path, path, extra, message):
    _, job = segmented
    with pytest.raises(UserError, match=message):
        run(f"segment save #{job.label_volume.id_string} {tmp_path / path} {extra}")
    assert list(tmp_path.iterdir()) == []


def test_labels_shows_hides_and_colours_named_structures(segmented, run):
    _, job = segmented
    volume = job.label_volume
    names = [s.name for s in job.models[1:]]
    assert names and all(s.display for s in job.models[1:])
    hidden = run(f'segment labels #{volume.id_string} names "{names[0]}" show false')
    assert [s.name for s in hidden] == [names[0]] and not hidden[0].display
    assert all(s.display for s in job.models[1:] if s.name != names[0])
    (recoloured,) = run(f'segment labels #{volume.id_string} names "{names[-1]}" color #102030')
    assert tuple(recoloured.color[:3]) == (0x10, 0x20, 0x30)
    run(f"segment labels #{volume.id_string} show true")
    assert all(s.display for s in job.models[1:])
    with pytest.raises(UserError, match="has no structure 'liver'"):
        run(f"segment labels #{volume.id_string} names liver show false")
