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
    if (TARGET / "example_ct_dicom").is_dir() and (TARGET / "example_seg_dicom.nii.gz").exists():
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        # pip reads the sdist's metadata while downloading; with setuptools here it needs no build env
        isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        *isolation, f"totalsegmentator=={VERSION}", "-d", tmp], check=True)
        sdist = next(Path(tmp).glob("totalsegmentator-*.tar.gz"))
        prefix = f"totalsegmentator-{VERSION}/"
        TARGET.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=TARGET.parent))  # same disk: rename works
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                name = member.name[len(prefix):] if member.name.startswith(prefix) else ""
                if member.isfile() and name.startswith(MEMBERS) and ".." not in Path(name).parts:
                    relative = Path(name).relative_to("tests/reference_files")
                    out = staging / relative
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(tar.extractfile(member).read())
        if TARGET.exists():  # a partial earlier run
            shutil.rmtree(TARGET)
        staging.rename(TARGET)
    print(f"DICOM test data in {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
