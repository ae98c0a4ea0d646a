"""The grid TotalSegmentator's models see, step by step against TotalSegmentator 2.18's own functions
(cropping, alignment, resampling) on the real CT stored RAS, LPS and oblique, with crops inside the image
(the parity tests' crops cover their small image whole)."""
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from totalsegmentator.alignment import undo_canonical
from totalsegmentator.cropping import crop_to_mask, undo_crop
from totalsegmentator.resampling import change_spacing

from chimerax.medseg.inference.canonical_grid import crop_box, labels_to_input_grid, model_grid_shape, to_model_grid

CASES = Path(__file__).resolve().parents[1] / "data" / "totalseg" / "cases"


def _theirs_in(image: nib.Nifti1Image, mask: np.ndarray | None, margin, spacing):
    """TotalSegmentator's steps before prediction (nnunet.py's order), with its functions."""
    copy = nib.Nifti1Image(image.get_fdata(), image.affine)
    box = None
    if mask is not None:
        copy, box = crop_to_mask(copy, nib.Nifti1Image(mask.astype(np.uint8), image.affine), addon=margin,
                                 dtype=np.int32)
    canonical = nib.as_closest_canonical(copy)
    return canonical, change_spacing(canonical, spacing, order=1, dtype=np.int32), box


@pytest.mark.parametrize("case", ["ct", "ct_lps", "ct_oblique"])
@pytest.mark.parametrize("cropped", [False, True])
def test_model_grid_and_the_way_back_equal_totalsegmentators(case, cropped):
    image = nib.load(str(CASES / f"{case}.nii.gz"))
    volume = np.asanyarray(image.dataobj).astype(np.float32)
    mask = None
    if cropped:  # a structure in one corner: the box is a strict part of the image on every axis
        mask = np.zeros(image.shape, dtype=bool)
        mask[5:17, 22:30, 3:9] = True
    margin, spacing = [10, 4, 7], [1.5, 1.5, 1.5]
    canonical, theirs, their_box = _theirs_in(image, mask, margin, spacing)
    zooms = np.sqrt((image.affine[:3, :3] ** 2).sum(axis=0)).astype(np.float32)
    box = crop_box(mask, zooms, margin) if cropped else None
    if cropped:
        assert [list(b) for b in box] == their_box and box != ((0, 40), (0, 40), (0, 22))
    ours, record = to_model_grid(volume, image.affine, spacing, box)
    np.testing.assert_array_equal(np.asanyarray(ours.dataobj), np.asanyarray(theirs.dataobj))
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-9)

    rng = np.random.default_rng(7)  # labels on the model grid, back to the input's grid
    labels = rng.integers(0, 30, size=theirs.shape).astype(np.uint8)
    back = change_spacing(nib.Nifti1Image(labels, theirs.affine), spacing, canonical.shape, order=0,
                          dtype=np.uint8, force_affine=canonical.affine)
    back = undo_canonical(back, image)
    if cropped:
        back = undo_crop(back, image, their_box)
    expected = back.get_fdata().astype(np.uint8)
    np.testing.assert_array_equal(labels_to_input_grid(labels, record), expected)


@pytest.mark.parametrize("case", ["ct", "ct_lps", "ct_oblique", "ct_tall"])
@pytest.mark.parametrize("spacing", [[1.5, 1.5, 1.5], [6.0, 6.0, 6.0], [0.8, 1.1, 2.5], [3.0, 3.0, 3.0]])
def test_model_grid_shape_is_the_shape_totalsegmentator_resamples_to(case, spacing):
    image = nib.load(str(CASES / f"{case}.nii.gz"))
    _, theirs, _ = _theirs_in(image, None, None, spacing)
    assert model_grid_shape(image.shape, image.affine, spacing) == theirs.shape
    assert model_grid_shape(image.shape, image.affine, None) == nib.as_closest_canonical(image).shape
