#!/usr/bin/env python3
"""Fetch the real CT DICOM series used by the DICOM tests from TotalSegmentator's PyPI sdist.

The series (20 JPEG 2000 CT slices, 3.1 MB) and its dcm2niix-grid label map are extracted to
tests/data/dicom/totalsegmentator/ (git-ignored). PyPI is the only network access; running it
again does nothing once the files are there.
"""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "2.18.0"
MEMBERS = ("tests/reference_files/example_ct_dicom/", "tests/reference_files/example_seg_dicom.nii.gz")
TARGET = Path(__file__).resolve().parents[1] / "tests" / "data" / "dicom" / "totalsegmentator"


def main() -> int:
    fetch_members(MEMBERS, TARGET)
    return 0


def fetch_members(members: tuple[str, ...], target: Path) -> None:
    """Extract the sdist's files under ``members`` (paths in it, below tests/reference_files/) into ``target``,
    downloading the sdist from PyPI once; nothing is done when every member is already there."""
    wanted = [target / Path(m).relative_to("tests/reference_files") for m in members]
    if all(w.exists() for w in wanted):
        return
    with tempfile.TemporaryDirectory() as tmp:
        # pip reads the sdist's metadata while downloading; with setuptools here it needs no build env
        isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        *isolation, f"totalsegmentator=={VERSION}", "-d", tmp], check=True)
        sdist = next(Path(tmp).glob("totalsegmentator-*.tar.gz"))
        prefix = f"totalsegmentator-{VERSION}/"
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=target.parent))  # same disk: rename works
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                name = member.name[len(prefix):] if member.name.startswith(prefix) else ""
                if member.isfile() and name.startswith(members) and ".." not in Path(name).parts:
                    relative = Path(name).relative_to("tests/reference_files")
                    out = staging / relative
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(tar.extractfile(member).read())
        if target.exists():  # a partial earlier run
            shutil.rmtree(target)
        staging.rename(target)
    print(f"TotalSegmentator's reference files in {target}")


if __name__ == "__main__":
    sys.exit(main())
