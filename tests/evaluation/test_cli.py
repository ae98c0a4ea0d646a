"""``medseg evaluate`` on folders of real label maps: tables, comparison, hard cases, stability,
pictures and refusals of bad input."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import stats

from chimerax.medseg.cli import main
from evaluation_helpers import perturb, save


@pytest.fixture(scope="module")
def folders(tmp_path_factory, ct_full, ct_fast):
    """Four cases cut from the real CT maps; 'fast' = TotalSegmentator fast model, 'shift' = worse."""
    root = tmp_path_factory.mktemp("eval")
    (full, affine), (fast, _) = ct_full, ct_fast
    for i, (z0, z1) in enumerate([(0, 30), (0, 16), (10, 30), (5, 25)]):
        case = f"case{i}"
        save(full[z0:z1], affine, root / "ref" / f"{case}.nii.gz")
        save(fast[z0:z1], affine, root / "fast" / f"{case}.nii.gz")
        save(perturb(full[z0:z1], "shift2"), affine, root / "shift" / f"{case}.nii.gz")
    return root


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_table_matches_simpleitk_and_is_printed(folders, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["evaluate", str(folders / "fast"), str(folders / "ref"), "--labels", "1", "5", "kidneys=2,3",
                 "--ignore-unlisted", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = _csv(out / "per_case.csv")
    assert len(rows) == 4 * 3 and {r["label"] for r in rows} == {"1", "5", "kidneys"}
    ref = sitk.ReadImage(str(folders / "ref" / "case1.nii.gz"))
    pred = sitk.ReadImage(str(folders / "fast" / "case1.nii.gz"))
    overlap = sitk.LabelOverlapMeasuresImageFilter()
    overlap.Execute(ref == 5, pred == 5)
    row = next(r for r in rows if r["case"] == "case1" and r["label"] == "5")
    assert float(row["dice"]) == pytest.approx(overlap.GetDiceCoefficient(), rel=1e-5)
    data = json.loads((out / "evaluation.json").read_text())
    dice5 = [float(r["dice"]) for r in rows if r["label"] == "5"]
    assert data["summary"]["5"]["dice"]["mean"] == pytest.approx(np.mean(dice5))
    assert data["summary"]["5"]["dice"]["median"] == pytest.approx(np.median(dice5))
    summary = _csv(out / "summary.csv")
    assert any(r["label"] == "kidneys" and r["metric"] == "hd95" for r in summary)
    assert "Per label" in printed and "kidneys" in printed and f"{np.mean(dice5):.3f}" in printed


def test_compare_two_models_with_a_paired_test(folders, tmp_path):
    out = tmp_path / "out"
    assert main(["evaluate", str(folders / "fast"), str(folders / "ref"), "--compare", str(folders / "shift"),
                 "--labels", "1", "5", "13", "--ignore-unlisted", "-o", str(out)]) == 0
    diffs = _csv(out / "comparison.csv")
    liver = [r for r in diffs if r["label"] == "5"]
    assert len(liver) == 4
    d = [float(r["dice_a"]) - float(r["dice_b"]) for r in liver]
    assert [float(r["dice_diff"]) for r in liver] == pytest.approx(d, abs=1e-5)
    test = json.loads((out / "evaluation.json").read_text())["comparison"]["per_label"]["5"]["dice"]
    assert test["p_value"] == pytest.approx(stats.wilcoxon(d).pvalue, rel=1e-3)
    assert all(x > 0 for x in d)  # the real fast model beats a 2-voxel shift of the truth


def test_hard_cases_go_into_every_training_fold(folders, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["evaluate", str(folders / "fast"), str(folders / "ref"), "--hard-below", "0.1", "--labels", "1", "5", "13", "--ignore-unlisted", "-o", str(out)]) == 0
    rows = _csv(out / "per_case.csv")
    expected = sorted({r["case"] for r in rows if r["dice"] and float(r["dice"]) < 0.1})
    assert expected  # the fast model misses a structure entirely
    hard = sorted(r["case"] for r in _csv(out / "hard_cases.csv"))
    assert hard == expected
    if len(expected) < 3:
        splits = json.loads((out / "splits_final.json").read_text())
        assert all(set(expected) <= set(f["train"]) and not set(expected) & set(f["val"]) for f in splits)
        assert sorted(c for f in splits for c in f["val"]) == sorted({r["case"] for r in rows} - set(expected))
    # an existing splits file: hard cases move out of validation into training
    given = tmp_path / "splits_final.json"
    given.write_text(json.dumps([{"train": ["case1", "case2", "case3"], "val": ["case0"]},
                                 {"train": ["case0", "case2", "case3"], "val": ["case1"]}]))
    assert main(["evaluate", str(folders / "fast"), str(folders / "ref"), "--hard-below", "0.1", "--splits", str(given),
                 "--labels", "1", "5", "13", "--ignore-unlisted", "-o", str(out)]) == 0
    for fold in json.loads((out / "splits_final.json").read_text()):
        assert set(expected) <= set(fold["train"]) and not set(expected) & set(fold["val"])


def test_stability_against_several_annotators(tmp_path, ct_full):
    full, affine = ct_full
    for i, (z0, z1) in enumerate([(0, 30), (0, 16), (10, 30)]):
        truth = full[z0:z1]
        for how in ("erode", "dilate", "shift1"):
            save(perturb(truth, how), affine, tmp_path / how / f"case{i}.nii.gz")
        save(truth, affine, tmp_path / "good" / f"case{i}.nii.gz")
        save(perturb(truth, "shift8"), affine, tmp_path / "bad" / f"case{i}.nii.gz")
    refs = [str(tmp_path / h) for h in ("erode", "dilate", "shift1")]
    verdicts = {}
    for model in ("good", "bad"):
        out = tmp_path / f"out_{model}"
        assert main(["evaluate", str(tmp_path / model), *refs, "--labels", "1", "5", "--ignore-unlisted",
                     "-o", str(out)]) == 0
        stability = json.loads((out / "evaluation.json").read_text())["stability"]
        verdicts[model] = stability["summary"]["5"]["dice"]["as_consistent_as_annotators"]
        spread = _csv(out / "stability.csv")
        pairs = _csv(out / "inter_reference.csv")
        assert len(spread) == 3 * 2 and len(pairs) == 3 * 3 * 2  # 3 cases x 3 pairs x 2 labels
        per_ref = [float(r["dice"]) for r in _csv(out / "per_case.csv") if r["case"] == "case0" and r["label"] == "5"]
        row = next(r for r in spread if r["case"] == "case0" and r["label"] == "5")
        assert float(row["dice_model_std"]) == pytest.approx(np.std(per_ref), abs=1e-5)
    assert verdicts == {"good": True, "bad": False}


def test_plots_render(folders, tmp_path):
    import matplotlib.image
    out = tmp_path / "out"
    assert main(["evaluate", str(folders / "fast"), str(folders / "ref"), "--compare", str(folders / "shift"),
                 "--hard-below", "0.5", "--plots", "--labels", "1", "5", "13", "--ignore-unlisted", "-o", str(out)]) == 0
    for name in ("boxplot.png", "per_case.png"):
        pixels = matplotlib.image.imread(out / name)
        assert pixels.shape[0] > 200 and pixels.shape[1] > 300
        assert pixels[..., :3].std() > 0.05  # drawn, not blank


def test_bad_input_is_refused_clearly(folders, tmp_path, ct_full, capsys):
    full, affine = ct_full
    pred = tmp_path / "pred"
    save(full[0:30], affine, pred / "case0.nii.gz")
    # predictions for a subset of the references (one fold's validation): that subset is scored, and said so
    assert main(["evaluate", str(pred), str(folders / "ref"), "--labels", "1", "5", "13", "--ignore-unlisted",
                 "-o", str(tmp_path / "o0")]) == 0
    assert "Matched 1 of the 4 reference cases" in capsys.readouterr().out
    assert {r["case"] for r in _csv(tmp_path / "o0" / "per_case.csv")} == {"case0"}
    save(full[0:30], affine, tmp_path / "other" / "case9.nii.gz")
    assert main(["evaluate", str(tmp_path / "other"), str(folders / "ref")]) == 1  # nothing matches at all
    assert "No case of" in capsys.readouterr().err
    assert main(["evaluate", str(pred), str(folders / "ref"), "--missing-as-empty", "--labels", "1", "5", "13", "--ignore-unlisted", "-o", str(tmp_path / "o1")]) == 0
    rows = _csv(tmp_path / "o1" / "per_case.csv")
    assert {r["missing_prediction"] for r in rows if r["case"] != "case0"} == {"True"}
    assert all(r["missed"] == "True" for r in rows if r["case"] == "case1" and r["volume_ref_ml"] != "0")
    # mismatched grids: refused, or resampled on request (and said so)
    grid = tmp_path / "grid"
    for i in range(4):  # 30 slices each; the references of case1..3 have fewer slices on the same origin
        save(full, affine, grid / f"case{i}.nii.gz")
    assert main(["evaluate", str(grid), str(folders / "ref")]) == 1
    assert "--resample" in capsys.readouterr().err
    assert main(["evaluate", str(grid), str(folders / "ref"), "--resample", "--labels", "1", "5", "13", "--ignore-unlisted", "-o", str(tmp_path / "o2")]) == 0
    assert "3 prediction(s) were resampled onto the reference grid" in capsys.readouterr().out
    rows = _csv(tmp_path / "o2" / "per_case.csv")
    assert {r["resampled"] for r in rows if r["case"] != "case0"} == {"True"}
    case1 = [float(r["dice"]) for r in rows if r["case"] == "case1" and r["dice"]]
    assert case1 and min(case1) == 1.0  # case1's reference is the first 16 of those very slices
    # label values missing from the labels list
    assert main(["evaluate", str(folders / "fast"), str(folders / "ref"), "--labels", "1", "2"]) == 1
    err = capsys.readouterr().err
    assert "not in the labels list" in err and "--ignore-unlisted" in err
    assert not (folders / "fast" / "evaluation").exists()  # nothing written on refusal
