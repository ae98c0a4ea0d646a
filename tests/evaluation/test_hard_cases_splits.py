"""``medseg evaluate --hard-below``: when no split can keep a validation case, it says so and exits 1, and no
splits_final.json (not even one from an earlier run) is left for ``medseg train --splits`` to read."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np

from chimerax.medseg.cli import main


def _save(labels: np.ndarray, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(labels.astype(np.uint8), np.diag([2.0, 2.0, 3.0, 1.0])), str(path))


def _cases(root, found: dict[str, bool]) -> None:
    """One reference cube per case; the prediction finds it (``found``) or is empty."""
    for case, hit in found.items():
        ref = np.zeros((12, 12, 6), np.uint8)
        ref[3:8, 3:8, 1:4] = 1
        _save(ref, root / "ref" / f"{case}.nii.gz")
        _save(ref if hit else np.zeros_like(ref), root / "pred" / f"{case}.nii.gz")


def test_every_case_hard_refused_and_stale_splits_removed(tmp_path, capsys):
    _cases(tmp_path, {"a": False, "b": False, "c": False})
    out = tmp_path / "out"
    out.mkdir()
    (out / "splits_final.json").write_text(json.dumps([{"train": ["a", "b"], "val": ["c"]}]))  # an earlier run's
    code = main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref"), "--hard-below", "0.5", "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert "Hard cases (a label's Dice below 0.5): 3 of 3" in captured.out
    assert "No splits_final.json written: Cannot make folds from 0 case(s)" in captured.err
    assert not (out / "splits_final.json").exists()
    assert (out / "hard_cases.csv").is_file() and (out / "per_case.csv").is_file()  # the scores are still there


def test_no_hard_case_keeps_the_given_folds(tmp_path):
    _cases(tmp_path, {"a": True, "b": True, "c": True})
    given = tmp_path / "splits.json"
    given.write_text(json.dumps([{"train": ["b", "c"], "val": ["a"]}, {"train": ["a", "c"], "val": ["b"]}]))
    assert main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref"), "--hard-below", "0.5", "--splits",
                 str(given), "-o", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "splits_final.json").read_text()) == json.loads(given.read_text())


def test_num_folds_makes_k_folds_of_the_other_cases(tmp_path, capsys):
    cases = {f"c{i}": i not in (0, 3) for i in range(8)}          # c0 and c3 missed: the hard ones
    _cases(tmp_path, cases)
    out = tmp_path / "out"
    argv = ["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref"), "--hard-below", "0.5", "-o", str(out)]
    assert main(argv + ["--num-folds", "3"]) == 0
    splits = json.loads((out / "splits_final.json").read_text())
    assert len(splits) == 3
    assert sorted(c for f in splits for c in f["val"]) == sorted(c for c, hit in cases.items() if hit)
    assert all({"c0", "c3"} <= set(f["train"]) and not set(f["train"]) & set(f["val"]) for f in splits)
    assert all(set(f["train"]) | set(f["val"]) == set(cases) for f in splits)
    # --num-folds without --hard-below, or with --splits (whose folds are kept), or below 2: refused first
    for extra in (["--num-folds", "1"], ["--num-folds", "3", "--splits", str(out / "splits_final.json")]):
        assert main(argv + extra) == 1
        assert "--num-folds K (at least 2) goes with --hard-below" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref"), "--num-folds", "3"]) == 1
