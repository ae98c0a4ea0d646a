"""Checks on ``medseg predict``'s outputs and ``--part``, made before the first forward pass.

A run that has segmented for an hour must not then fail on a path, and an output must never
replace a scan: each output is compared with every input file and folder up front.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import MedSegError


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_outputs(outputs: Sequence[Path], input_files: Iterable[Path], input_folders: Iterable[Path],
                  allow_inside_input: bool = False) -> None:
    """Refuse outputs that are an input, lie in an input folder, clash, or cannot be written.

    Args:
        outputs: every file the run will write (labels, probabilities).
        input_files: every file the run reads.
        input_folders: folders the run reads cases from; results written there would be read as
            cases by the next run (``allow_inside_input`` lets the user insist).
    """
    files = {_resolved(p) for p in input_files}
    folders = [_resolved(p) for p in input_folders]
    seen: dict[Path, Path] = {}
    for output in outputs:
        real = _resolved(output)
        if real in files:
            raise MedSegError(f"The output {output} is one of the input files; it would be overwritten. "
                              "Choose another output name or folder.")
        for folder in folders:
            if _is_within(real, folder) and not allow_inside_input:
                raise MedSegError(f"The output {output} lies inside the input folder {folder}; the next run would "
                                  "read the results as cases. Choose an output folder outside it.")
        if real in seen:
            raise MedSegError(f"Two cases would both be written to {output}; give distinct case names.")
        seen[real] = output
        _check_writable(output)


def _check_writable(output: Path) -> None:
    """The output's place must be a writable folder (or creatable in one), and the name not a folder."""
    if output.is_dir():
        raise MedSegError(f"The output {output} is an existing folder; give a file name, or a folder "
                          "for several cases.")
    ancestor = output.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise MedSegError(f"Cannot write {output}: {ancestor} is a file, not a folder.")
    try:  # a real probe: permissions, read-only file systems and quotas all show here
        with tempfile.TemporaryFile(dir=ancestor, prefix=".medseg-probe-"):
            pass
    except OSError as exc:
        raise MedSegError(f"Cannot write into {ancestor} ({exc.strerror}); choose an output folder you can "
                          "write to.") from None


def parse_part(part: str) -> tuple[int, int]:
    """``--part k/N`` as (k, N), 1 <= k <= N."""
    try:
        k, n = (int(x) for x in part.split("/"))
    except ValueError:
        raise MedSegError(f"--part must look like k/N (e.g. 2/4); got {part!r}.") from None
    if not 1 <= k <= n:
        raise MedSegError(f"--part {part}: k must be between 1 and N.")
    return k, n
