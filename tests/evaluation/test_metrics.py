"""The metrics against SimpleITK's overlap and Hausdorff filters on real label maps."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.evaluation.casefiles import resample_labels
from chimerax.medseg.evaluation.metrics import (Region, case_metrics, grid_diagonal_mm, label_values, parse_regions,
                                                regions_from_values)

from evaluation_helpers import perturb

sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)  # many tiny filters: threads only contend on 2 cores


def _sitk(mask: np.ndarray, spacing) -> sitk.Image:
    image = sitk.GetImageFromArray(np.pad(mask, 1).astype(np.uint8))  # padded: the border is background
    image.SetSpacing(tuple(float(s) for s in reversed(spacing)))
    return image


def _sitk_surface_distances(a: sitk.Image, b: sitk.Image) -> np.ndarray:
    """Distances from a's contour voxels to b's contour (SimpleITK's contour + Maurer distance map)."""
    contour_b = sitk.LabelContour(b, fullyConnected=False)
    distance = sitk.Abs(sitk.SignedMaurerDistanceMap(contour_b, squaredDistance=False, useImageSpacing=True))
    return sitk.GetArrayFromImage(distance)[sitk.GetArrayFromImage(sitk.LabelContour(a, fullyConnected=False)) > 0]


def _check_against_sitk(pred, ref, spacing, min_labels, every=1):
    regions = regions_from_values(label_values(pred) & label_values(ref))
    assert len(regions) >= min_labels
    regions = regions[::every]  # a spread of labels, small and large, keeps the test quick
    rows = case_metrics(pred, ref, regions, spacing)
    for region, row in zip(regions, rows):
        p, r = _sitk(pred == region.values[0], spacing), _sitk(ref == region.values[0], spacing)
        overlap = sitk.LabelOverlapMeasuresImageFilter()
        overlap.Execute(r, p)
        hausdorff = sitk.HausdorffDistanceImageFilter()
        hausdorff.Execute(r, p)
        to_ref, to_pred = _sitk_surface_distances(p, r), _sitk_surface_distances(r, p)
        assert row["dice"] == pytest.approx(overlap.GetDiceCoefficient(), abs=1e-9), region
        assert row["iou"] == pytest.approx(overlap.GetJaccardCoefficient(), abs=1e-9), region
        assert row["hd"] == pytest.approx(hausdorff.GetHausdorffDistance(), abs=1e-4), region
        hd95 = max(np.percentile(to_ref, 95), np.percentile(to_pred, 95))
        assert row["hd95"] == pytest.approx(hd95, abs=1e-4), region
        assert row["asd"] == pytest.approx(np.concatenate([to_ref, to_pred]).mean(), abs=1e-4), region
        # SimpleITK's volume similarity of Execute(source=R, target=P) is 2 (|R| - |P|) / (|R| + |P|)
        vp, vr = row["volume_pred_ml"], row["volume_ref_ml"]
        assert 2 * (vr - vp) / (vp + vr) == pytest.approx(overlap.GetVolumeSimilarity(), abs=1e-9)
    return rows


def test_two_real_models_agree_with_simpleitk(ct_full, ct_fast):
    (ref, affine), (pred, _) = ct_full, ct_fast
    spacing = tuple(np.abs(np.diag(affine)[:3])[::-1])
    rows = _check_against_sitk(pred, ref, spacing, min_labels=35, every=3)
    assert 0.5 < np.mean([r["dice"] for r in rows]) < 1.0  # two real, different models


def test_anisotropic_spacing_agrees_with_simpleitk(dicom_crop):
    ref, affine = dicom_crop
    spacing = tuple(np.linalg.norm(affine[:3, :3], axis=0)[::-1])  # (2, 0.977, 0.977) mm
    assert spacing[0] == pytest.approx(2.0) and spacing[1] == pytest.approx(0.9765625)
    pred = perturb(perturb(ref, "erode"), "shift2")
    _check_against_sitk(pred, ref, spacing, min_labels=10)
    # Without the spacing the distances would differ: a z step is 2 mm, an x step ~1 mm.
    iso = case_metrics(pred, ref, [Region("5", (5,))], (1, 1, 1))[0]["asd"]
    assert case_metrics(pred, ref, [Region("5", (5,))], spacing)[0]["asd"] != pytest.approx(iso)


def test_empty_masks_follow_the_stated_conventions(ct_full, ct_fast):
    (ref, _), (pred, _) = ct_full, ct_fast
    spacing = (3.0, 3.0, 3.0)
    missing_in_fast = sorted(label_values(ref) - label_values(pred))
    assert missing_in_fast  # the fast model misses a structure of the full model entirely
    absent = max(label_values(ref)) + 1
    rows = case_metrics(pred, ref, [Region("missed", (missing_in_fast[0],)), Region("absent", (absent,))], spacing)
    missed, both_empty = rows
    worst = grid_diagonal_mm(ref.shape, spacing)
    assert missed["dice"] == 0 and missed["missed"] and not missed["false_alarm"]
    assert missed["hd95"] == missed["asd"] == worst
    assert missed["lesions_missed"] == missed["lesions_ref"] > 0
    assert all(math.isnan(both_empty[m]) for m in ("dice", "iou", "hd95", "hd", "asd"))
    assert not both_empty["missed"] and both_empty["volume_diff_ml"] == 0
    # the same structure seen from the other side is a false alarm
    swapped = case_metrics(ref, pred, [Region("x", (missing_in_fast[0],))], spacing)[0]
    assert swapped["false_alarm"] and swapped["dice"] == 0 and swapped["hd95"] == worst


def test_regions_and_lesion_detection(ct_full):
    ref, _ = ct_full
    kidneys = Region("kidneys", (2, 3))  # TotalSegmentator: 2 kidney_right, 3 kidney_left
    components = ndimage.label(np.isin(ref, (2, 3)), np.ones((3, 3, 3)))[1]
    pred = ref.copy()
    pred[pred == 3] = 0  # one kidney missed entirely
    row = case_metrics(pred, ref, [kidneys], (3, 3, 3))[0]
    assert row["lesions_ref"] == components == 2
    assert row["lesions_missed"] == 1 and row["lesions_false"] == 0 and not row["missed"]
    right, left = np.count_nonzero(ref == 2), np.count_nonzero(ref == 3)
    assert row["dice"] == pytest.approx(2 * right / (2 * right + left))


def test_parse_regions():
    regions = parse_regions(["1", "liver=5", "tumor=2,3", "7 8"])
    assert [(r.name, r.values) for r in regions] == [("1", (1,)), ("liver", (5,)), ("tumor", (2, 3)), ("7", (7,)), ("8", (8,))]
    for bad in (["x"], ["0"], ["a=1", "a=2"]):
        with pytest.raises(MedSegError):
            parse_regions(bad)


def test_resampling_a_flipped_copy_restores_the_reference(dicom_crop):
    ref, affine = dicom_crop
    flip = np.diag([-1.0, 1, 1, 1])
    flip[0, 3] = ref.shape[2] - 1  # voxel i -> n-1-i
    flipped, flipped_affine = ref[:, :, ::-1], affine @ flip
    back = resample_labels(flipped, flipped_affine, ref.shape, affine)
    assert np.array_equal(back, ref)


def test_fast_on_a_256_cube(ct_full):
    ref, _ = ct_full
    big = ndimage.zoom(ref, [256 / n for n in ref.shape], order=0)
    pred = np.roll(big, 3, axis=1)
    regions = regions_from_values(sorted(label_values(big))[:6])
    start = time.perf_counter()
    rows = case_metrics(pred, big, regions, (1.0, 1.0, 1.0))
    seconds = time.perf_counter() - start
    assert len(rows) == 6 and all(r["hd"] >= 3 for r in rows)
    assert seconds < 30, f"6 labels on 256^3 took {seconds:.1f} s"
