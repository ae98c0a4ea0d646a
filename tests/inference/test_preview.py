"""The preview picture: slices turned to the patient's frame whatever the storage order, and
`medseg predict --preview` drawing what was found."""
from __future__ import annotations

import numpy as np
import pytest

from chimerax.medseg.cli import main
from chimerax.medseg.errors import MedSegError
from chimerax.medseg.images import Image
from chimerax.medseg.inference.predictor import example_case_paths, example_model_path
from chimerax.medseg.inference.preview import to_ras, write_preview


def _marked(affine: np.ndarray, shape=(5, 6, 7)) -> tuple[np.ndarray, np.ndarray]:
    """A (z, y, x) array marking the voxel nearest the world's right-anterior-superior corner."""
    array = np.zeros(shape, np.float32)
    zyx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    world = (affine @ np.c_[zyx[:, ::-1], np.ones(len(zyx))].T)[:3].T
    array[tuple(zyx[np.argmax(world.sum(axis=1))])] = 1
    return array, affine


@pytest.mark.parametrize("affine", [
    np.diag([2.0, 1.0, 3.0, 1.0]),                                    # RAS storage
    np.diag([-2.0, -1.0, 3.0, 1.0]),                                  # LPS storage (DICOM's)
    np.array([[0, 0, -3.0, 0], [2.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1]]),  # axes permuted and flipped
])
def test_to_ras_puts_the_right_anterior_superior_voxel_at_the_far_corner(affine):
    array, affine = _marked(affine)
    ras, spacing = to_ras(array, affine)
    assert np.unravel_index(np.argmax(ras), ras.shape) == tuple(n - 1 for n in ras.shape)
    assert sorted(spacing) == [1.0, 2.0, 3.0]


def test_preview_refuses_labels_off_the_grid(tmp_path):
    image = Image(np.zeros((1, 4, 4, 4), np.float32), (1, 1, 1))
    with pytest.raises(MedSegError, match="not on the image's grid"):
        write_preview(image, np.zeros((4, 4, 5), np.int16), {1: "a"}, {1: (255, 0, 0)}, tmp_path / "p.png")
    assert not (tmp_path / "p.png").exists()


def test_predict_preview_draws_each_structure_in_its_colour(tmp_path):
    import matplotlib.image
    out, picture = tmp_path / "labels.nii.gz", tmp_path / "case.png"
    args = ["predict", "-m", str(example_model_path()), "-i", *map(str, example_case_paths()), "-o", str(out),
            "--device", "cpu", "--fast", "--folds", "0", "--quiet", "--preview", str(picture)]
    assert main(args) == 0 and out.is_file()
    pixels = (matplotlib.image.imread(str(picture))[..., :3] * 255).round().astype(int)
    from chimerax.medseg.images.colors import label_colors
    from chimerax.medseg.models.model_folder import open_model_folder
    folder = open_model_folder(example_model_path())
    for value, rgba in label_colors(folder.labels.names, folder.dataset_json).items():
        near = (np.abs(pixels - np.array(rgba[:3])) <= 12).all(axis=-1)
        assert near.sum() > 50, f"{folder.labels.names[value]} is not drawn"
