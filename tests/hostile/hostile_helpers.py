"""Helpers for the hostile-input catalogue: run the CLI in-process and insist on one error line."""
from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np

TESTS = Path(__file__).resolve().parent.parent
for sub in ("inference", "images", "models"):  # the tiny models, DICOM factory and HTTP server beside them
    if str(TESTS / sub) not in sys.path:
        sys.path.insert(0, str(TESTS / sub))

from chimerax.medseg.cli import main  # noqa: E402


class Hung(BaseException):
    """Raised on a timeout. Not an Exception: code under test that catches Exception (or OSError,
    as urllib3 does with TimeoutError) cannot swallow it and carry on."""


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(code: int, err: str, *fragments: str) -> None:
    """Exit 1, exactly one ``medseg: error:`` line, the fragments in it, and no traceback."""
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.startswith("medseg: ")]
    assert len(lines) == 1 and lines[0].startswith("medseg: error: "), err
    assert "Traceback" not in err and "internal error" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], err


def write_nifti(path: Path, data: np.ndarray, affine=None, pixdim=None) -> Path:
    image = nib.Nifti1Image(data, np.eye(4) if affine is None else affine)
    if pixdim is not None:
        image.header["pixdim"][1:1 + len(pixdim)] = pixdim
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return path


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
