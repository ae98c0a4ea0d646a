"""Splitting a cohort with ``--part k/N``: every case in exactly one share, shares disjoint."""
from __future__ import annotations

import pytest

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.inference.jobs import parse_part, plan_jobs


@pytest.fixture
def cohort(tmp_path):
    folder = tmp_path / "cases"
    folder.mkdir()
    for case in range(11):
        for channel in range(2):
            (folder / f"case{case:02d}_{channel:04d}.nii.gz").write_bytes(b"")  # names are all planning reads
    return folder


@pytest.mark.parametrize("n", [1, 2, 3, 4, 11, 13])
def test_parts_cover_every_case_once(cohort, tmp_path, n):
    shares = [[job.name for job in plan_jobs([str(cohort)], str(tmp_path / "out"), f"{k}/{n}")] for k in range(1, n + 1)]
    names = [name for share in shares for name in share]
    assert sorted(names) == [f"case{c:02d}" for c in range(11)]
    assert len(names) == len(set(names))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1  # balanced


@pytest.mark.parametrize("part", ["0/4", "5/4", "1/0", "a/b", "2", "1/2/3", "-1/4"])
def test_bad_parts_are_refused(part):
    with pytest.raises(MedSegError, match="--part"):
        parse_part(part)
