"""Command-line habits of the field: --quiet/--verbose everywhere, close matches for mistakes, a closed
pipe ends quietly, warnings as one line."""
from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

from chimerax.medseg.cli import _leaf_parsers, build_parser, main
from chimerax.medseg.errors_report import run_reporting


def test_every_command_takes_quiet_and_verbose():
    leaves = _leaf_parsers(build_parser())
    assert len(leaves) >= 15
    for parser in leaves:
        flags = {s for action in parser._actions for s in action.option_strings}
        assert {"--quiet", "--verbose"} <= flags, parser.prog


@pytest.mark.parametrize("argv, hint", [(["predcit"], "Did you mean 'predict'?"),
                                        (["models", "lsit"], "Did you mean 'list'?"),
                                        (["predict", "-m", "x", "-i", "y", "-o", "z", "--foldz", "0"],
                                         "--foldz: Did you mean '--folds'?"),
                                        (["predict", "-m", "x", "-i", "y", "-o", "z", "--output-format", "nifty"],
                                         "Did you mean 'nifti'?"),
                                        (["--quiet", "models", "list"], "--quiet: give it after `medseg models list`")])
def test_mistakes_get_the_close_match(argv, hint, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and hint in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly():
    medseg = [sys.executable, "-c", "import sys; from chimerax.medseg.cli import main; sys.exit(main())"]
    result = subprocess.run(f"{' '.join(medseg[:2])} \"{medseg[2]}\" models list | head -1", shell=True,
                            capture_output=True, text=True, executable="/bin/bash")
    assert result.stdout.startswith("NAME") and result.stderr == ""


def test_warnings_print_as_one_medseg_line():
    with warnings.catch_warnings():  # restores Python's formatting afterwards
        assert run_reporting(lambda: 0) == 0
        printed = warnings.formatwarning("something to know\n  on two lines", UserWarning, "x.py", 3)
    assert printed == "medseg: warning: something to know on two lines\n"
