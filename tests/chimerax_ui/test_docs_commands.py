"""docs/chimerax.md's ```cxc blocks run exactly as written, in headless ChimeraX."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "images"))
from dicom_helpers import write_phantom_study  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / "docs" / "chimerax.md"


def _blocks() -> list[list[str]]:
    return [[line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]
            for block in re.findall(r"```cxc\n(.*?)```", DOC.read_text(), re.S)]


def test_the_page_has_a_tested_block():
    assert _blocks() and all(line.startswith("segment") for block in _blocks() for line in block)


def test_docs_blocks_run_as_written(run, log, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write_phantom_study(tmp_path / "medseg-example")
    for block in _blocks():
        for command in block:
            run(command)
    folder = tmp_path / "medseg-example"
    labels = np.asarray(nib.load(str(folder / "labels.nii.gz")).dataobj)
    assert labels.max() > 0
    assert (folder / "labels.dcm").stat().st_size > 1000 and (folder / "rtstruct.dcm").stat().st_size > 1000
    assert "Evaluated #7 against #5" in log.text()  # one fold against the 5-fold ensemble
