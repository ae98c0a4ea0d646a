"""``medseg evaluate --compare`` prints both models' Dice and HD95 per case side by side, as in comparison.csv."""
from __future__ import annotations

import csv

import nibabel as nib
import numpy as np

from chimerax.medseg.cli import main


def _save(labels: np.ndarray, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(labels.astype(np.uint8), np.diag([2.0, 2.0, 3.0, 1.0])), str(path))


def test_per_case_side_by_side_printed(tmp_path, capsys):
    for i, cut in enumerate((8, 6, 5)):
        ref = np.zeros((14, 14, 8), np.uint8)
        ref[3:9, 3:9, 2:6] = 1
        a, b = ref.copy(), np.zeros_like(ref)
        a[3:9, 3:9, 5] = 0                       # A misses a slice
        b[3:cut, 3:9, 2:6] = 1                   # B finds less of the cube, less each case
        for folder, labels in (("ref", ref), ("a", a), ("b", b)):
            _save(labels, tmp_path / folder / f"case{i}.nii.gz")
    out = tmp_path / "out"
    assert main(["evaluate", str(tmp_path / "a"), str(tmp_path / "ref"), "--compare", str(tmp_path / "b"),
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    with open(out / "comparison.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    lines = printed.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("case") and "dice B" in line))
    for row, line in zip(rows, lines[start + 2:start + 5]):
        values = line.split()
        assert values[:2] == [row["case"], row["label"]]
        expected = [float(row[k]) for k in ("dice_a", "dice_b", "hd95_a", "hd95_b")]
        assert [float(v) for v in values[2:]] == [round(x, 3) for x in expected]
    assert float(rows[2]["dice_b"]) < float(rows[0]["dice_b"])   # the cases differ, so the rows are told apart
