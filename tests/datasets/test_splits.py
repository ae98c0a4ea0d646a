"""Cross-validation splits: nnU-Net's folds, patient grouping, custom files, fold 'all'."""
import json

import pytest
from nnunetv2.utilities.crossval_split import generate_crossval_split

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.datasets.splits import check_splits, fold_cases, make_splits, random_split


@pytest.mark.parametrize("count", [5, 7, 12, 23])
def test_same_folds_as_nnunet(count):
    cases = [f"case{i:03d}" for i in range(count)]
    theirs = generate_crossval_split(cases, seed=12345, n_splits=5)
    ours = make_splits(list(reversed(cases)))
    assert [{"train": list(f["train"]), "val": list(f["val"])} for f in theirs] == ours


def test_patients_never_on_both_sides():
    cases = [f"c{i:02d}" for i in range(20)]
    patients = {c: f"p{i // 3}" for i, c in enumerate(cases)}  # 3 scans per patient (7 patients)
    splits = make_splits(cases, patients=patients)
    assert len(splits) == 5
    assert sorted(c for f in splits for c in f["val"]) == cases  # every case validated exactly once
    for fold in splits:
        assert {patients[c] for c in fold["train"]}.isdisjoint({patients[c] for c in fold["val"]})
    with pytest.raises(MedSegError, match="no entry for c19"):
        make_splits(cases, patients={c: "p" for c in cases[:-1]})


def test_custom_splits_are_checked(tmp_path):
    cases = ["a", "b", "c", "d"]
    good = [{"train": ["a", "b", "c"], "val": ["d"]}]
    path = tmp_path / "splits.json"
    path.write_text(json.dumps(good))
    assert fold_cases(0, cases, tmp_path, path) == (["a", "b", "c"], ["d"])
    for bad, message in (([{"train": ["a", "x"], "val": ["d"]}], "unknown case"),
                         ([{"train": ["a", "d"], "val": ["d"]}], "in training and validation"),
                         ({"train": []}, "not an nnU-Net splits file")):
        with pytest.raises(MedSegError, match=message):
            check_splits(bad, cases, "splits.json")
    with pytest.raises(MedSegError, match="patient"):
        check_splits(good, cases, "splits.json", patients={"a": "p1", "b": "p2", "c": "p3", "d": "p1"})


def test_splits_file_created_once_and_fold_all(tmp_path):
    cases = [f"case{i}" for i in range(6)]
    train, val = fold_cases(2, cases, tmp_path)
    stored = json.loads((tmp_path / "splits_final.json").read_text())
    assert (train, val) == (stored[2]["train"], stored[2]["val"])
    (tmp_path / "splits_final.json").write_text(json.dumps([{"train": cases[1:], "val": cases[:1]}]))
    assert fold_cases(0, cases, tmp_path) == (cases[1:], cases[:1])  # an existing file wins (as nnU-Net)
    assert fold_cases("all", cases, tmp_path) == (cases, cases)
    beyond = fold_cases(7, cases, tmp_path)  # beyond the list: random 80:20
    assert len(beyond[0]) == 4 and sorted(beyond[0] + beyond[1]) == cases
    assert random_split(cases, 7) == random_split(cases, 7) != random_split(cases, 8)
