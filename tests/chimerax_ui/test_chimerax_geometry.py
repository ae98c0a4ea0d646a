"""Volumes -> engine image: geometry kept, other grids resampled onto the first (no model needed)."""
from __future__ import annotations

import numpy as np

from chimerax_helpers import rotation_matrix


def _phantom(shape=(12, 14, 16), seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(100, 20, shape).astype(np.float32)


def test_image_keeps_the_grid_of_the_first_volume(session, add_volume):
    from chimerax.medseg.chimerax_ui.volumes import grid_to_scene, image_from_volumes
    rot = rotation_matrix((1, 2, 0.5), 35)
    a = add_volume(_phantom(), origin=(-10, 5, 3), step=(0.8, 1.2, 2.5), rotation=rot, name="a")
    image, notes = image_from_volumes([a])
    assert notes == []
    assert image.spacing == (2.5, 1.2, 0.8)  # (z, y, x)
    np.testing.assert_array_equal(image.array[0], a.full_matrix())
    # voxel (i, j, k) = (2, 3, 4) sits at origin + R @ (step * ijk)
    expected = np.array([-10, 5, 3]) + rot @ (np.array([0.8, 1.2, 2.5]) * [2, 3, 4])
    np.testing.assert_allclose((image.affine @ [2, 3, 4, 1])[:3], expected, atol=1e-5)
    np.testing.assert_allclose(grid_to_scene(a), image.affine)


def test_volume_on_another_grid_is_resampled_onto_the_first(session, add_volume):
    """A padded, shifted copy of channel 0 resamples back to exactly channel 0."""
    from chimerax.medseg.chimerax_ui.volumes import image_from_volumes
    rot = rotation_matrix((0, 0, 1), 20)
    step = np.array([1.5, 1.0, 2.0])
    data = _phantom()
    first = add_volume(data, origin=(4, -2, 7), step=step, rotation=rot, name="first")
    padded = np.pad(data * 2, 2)
    origin = np.array([4, -2, 7]) - rot @ (2 * step)  # two voxels further out along each axis
    second = add_volume(padded, origin=origin, step=step, rotation=rot, name="second")
    image, notes = image_from_volumes([first, second])
    assert len(notes) == 1 and "second" in notes[0] and "resampled" in notes[0]
    np.testing.assert_allclose(image.array[1], data * 2, rtol=1e-4, atol=1e-3)


def test_resampling_follows_the_model_position(session, add_volume):
    """A volume moved in the scene is sampled where it now is (scene coordinates count)."""
    from chimerax.geometry import translation
    from chimerax.medseg.chimerax_ui.volumes import image_from_volumes
    data = _phantom((8, 9, 10))
    first = add_volume(data, name="first")
    moved = add_volume(np.pad(data, ((0, 0), (0, 0), (3, 1))), name="moved")  # 3 voxels later along x...
    moved.position = translation((-3, 0, 0))                                   # ...moved back by 3
    image, notes = image_from_volumes([first, moved])
    assert notes  # same size is not the same grid: positions differ
    np.testing.assert_allclose(image.array[1], data, rtol=1e-5)
