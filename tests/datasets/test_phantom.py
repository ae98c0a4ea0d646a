"""The synthetic BraTS-like phantoms: nested regions, MRI-like contrasts, geometry, and a valid dataset."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from chimerax.medseg.datasets import phantom
from chimerax.medseg.cli import main
from chimerax.medseg.datasets.verify import verify_dataset


@pytest.fixture(scope="module")
def cases():
    rng = np.random.default_rng(3)
    return [phantom.make_phantom(rng) for _ in range(4)]


def test_tumour_parts_nest_inside_the_brain(cases):
    for case in cases:
        brain = case.image[0] > 0
        labels = case.labels
        assert set(np.unique(labels)) == {0, 1, 2, 3}
        assert brain[labels > 0].all() and (~brain).any()  # zero background, so the crop matters
        # the necrotic core lies inside the enhancing rim: each necrotic voxel's neighbours are tumour core
        core = np.isin(labels, (phantom.NECROSIS, phantom.ENHANCING))
        z, y, x = np.nonzero(labels == phantom.NECROSIS)
        for dz, dy, dx in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
            inside = core[np.clip(z + dz, 0, core.shape[0] - 1), np.clip(y + dy, 0, core.shape[1] - 1),
                          np.clip(x + dx, 0, core.shape[2] - 1)]
            assert inside.mean() > 0.9


def test_each_part_has_its_own_contrast(cases):
    t1, t1ce, t2, flair = range(4)
    for case in cases:
        mean = {v: case.image[:, case.labels == v].mean(axis=1) for v in (1, 2, 3)}
        brain = (case.image[0] > 0) & (case.labels == 0)
        normal = case.image[:, brain].mean(axis=1)
        assert mean[3][t1ce] > 1.4 * max(mean[1][t1ce], mean[2][t1ce], normal[t1ce])  # enhancement
        assert mean[1][flair] > 1.3 * normal[flair]                                    # oedema bright in FLAIR
        assert mean[2][t2] > mean[3][t2] and mean[2][flair] < mean[1][flair]           # necrosis: fluid-like


def test_spacing_and_orientation_vary_and_seeds_reproduce(cases):
    spacings = np.array([c.spacing for c in cases])
    assert np.ptp(spacings[:, 0]) > 0.1 and np.ptp(spacings[:, 1]) > 0.1
    assert len({tuple(np.round(c.affine[:3, :3].ravel(), 3)) for c in cases}) == len(cases)
    for case in cases:
        assert np.allclose(np.linalg.norm(case.affine[:3, :3], axis=0), case.spacing[::-1])
        assert case.image.shape[1:] == case.labels.shape and case.image.dtype == np.int16
    again = phantom.make_phantom(np.random.default_rng(3))
    assert np.array_equal(again.image, cases[0].image) and np.array_equal(again.affine, cases[0].affine)


def test_a_fixed_shape_fills_the_grid():
    case = phantom.make_phantom(np.random.default_rng(0), (1.0, 1.0, 1.0), rotate=False, shape=(40, 64, 56))
    assert case.labels.shape == (40, 64, 56) and np.array_equal(case.affine[:3, :3], np.eye(3))
    assert 0.2 < (case.image[0] > 0).mean() < 0.6


def test_cli_writes_a_valid_region_dataset_with_held_out_cases(tmp_path, capsys):
    raw = tmp_path / "raw"
    assert main(["dataset", "phantom", "--id", "991", "--cases", "3", "--test-cases", "1", "--raw", str(raw)]) == 0
    folder = raw / "Dataset991_BraTSPhantom"
    assert str(folder) in capsys.readouterr().out
    assert verify_dataset(folder).ok
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["labels"]["tumor_core"] == [2, 3] and meta["numTraining"] == 3
    assert len(list((folder / "imagesTr").iterdir())) == 12 and len(list((folder / "imagesTs").iterdir())) == 4
    label = nib.load(folder / "labelsTs" / "phantom_003.nii.gz")
    image = nib.load(folder / "imagesTs" / "phantom_003_0001.nii.gz")
    assert np.allclose(label.affine, image.affine) and label.shape == image.shape
    # the id is taken: a clear error, and nothing is overwritten
    assert main(["dataset", "phantom", "--id", "991", "--cases", "1", "--raw", str(raw)]) != 0
    assert "already used" in capsys.readouterr().err
    assert verify_dataset(folder).ok and len(list((folder / "imagesTr").iterdir())) == 12
