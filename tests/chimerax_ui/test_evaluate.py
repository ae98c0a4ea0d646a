"""``segment evaluate`` inside headless ChimeraX on real label maps (TotalSegmentator examples)."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

DATA = Path(__file__).resolve().parents[1] / "data" / "evaluation"


def _load(name):
    nii = nib.load(str(DATA / name))
    return np.ascontiguousarray(np.asanyarray(nii.dataobj).transpose(2, 1, 0)), tuple(float(z) for z in nii.header.get_zooms())


def _sitk_dice(pred, ref, value):
    f = sitk.LabelOverlapMeasuresImageFilter()
    f.Execute(sitk.GetImageFromArray((ref == value).astype(np.uint8)), sitk.GetImageFromArray((pred == value).astype(np.uint8)))
    return f.GetDiceCoefficient()


def test_evaluate_logs_table_and_colours_errors(run, log, add_volume, session):
    fast, step = _load("totalseg_ct_seg_fast.nii.gz")
    full, _ = _load("totalseg_ct_seg.nii.gz")
    pred = add_volume(fast, step=step, name="fast")
    add_volume(full, step=step, name="full")
    ev = run(f"segment evaluate #{pred.id_string} reference #2 labels '1 5 13' ignoreUnlisted true")
    text = log.text()
    assert "Evaluation of #1" in text and "mean Dice" in text
    liver = next(r for r in ev.rows if r["label"] == "5")
    assert liver["dice"] == pytest.approx(_sitk_dice(fast, full, 5), abs=1e-9)
    assert f'{liver["dice"]:.3f}' in text
    assert next(r for r in ev.rows if r["label"] == "13")["missed"]  # the fast model misses it
    errors = [m for m in session.models if hasattr(m, "medseg_error_counts")][0]
    surfaces = {s.name: s for s in errors.medseg_error_surfaces}
    assert set(surfaces) >= {"false positive", "false negative"}
    assert tuple(surfaces["false positive"].color[:3]) != tuple(surfaces["false negative"].color[:3])
    listed = np.isin(fast, (1, 5, 13)), np.isin(full, (1, 5, 13))
    assert errors.medseg_error_counts["false positive"] == np.count_nonzero(listed[0] & ~listed[1])
    assert errors.medseg_error_counts["false negative"] == np.count_nonzero(~listed[0] & listed[1])


def test_several_references_give_the_stability_table(run, log, add_volume):
    full, step = _load("totalseg_ct_seg.nii.gz")
    fast, _ = _load("totalseg_ct_seg_fast.nii.gz")
    add_volume(fast, step=step, name="fast")
    for shift in (0, 1, -1):
        add_volume(np.roll(full, shift, axis=2), step=step, name=f"annotator {shift}")
    ev = run("segment evaluate #1 reference #2,3,4 labels '1 5' ignoreUnlisted true showErrors false")
    assert ev.reference_names == ["#2", "#3", "#4"] and len(ev.pair_rows) == 3 * 2
    assert "Stability across references" in log.text()


def test_bad_input_is_a_user_error(run, add_volume):
    from chimerax.core.errors import UserError
    full, step = _load("totalseg_ct_seg.nii.gz")
    add_volume(full, step=step, name="full")
    add_volume(full[:, :, ::2].copy(), step=(step[0] * 2, step[1], step[2]), name="coarse")
    with pytest.raises(UserError, match="not on the grid"):
        run("segment evaluate #2 reference #1")
    ev = run("segment evaluate #2 reference #1 resample true showErrors false")
    liver = next(r for r in ev.rows if r["label"] == "5")
    assert 0.8 < liver["dice"] < 1.0  # every other column, resampled back: close, not identical
    with pytest.raises(UserError, match="not in the labels list"):
        run("segment evaluate #2 reference #1 labels '1' resample true")
