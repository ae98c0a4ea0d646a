"""The command line's progress bar: one line on a terminal, sparse lines when piped, rate and time left."""
from __future__ import annotations

import io

from chimerax.medseg import progress
from chimerax.medseg.progress import ProgressBar, format_seconds


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(stream) -> str:
    bar = ProgressBar("case", stream=stream)
    for i in range(1, 101):
        bar.update(i / 100, f"tile {i}/100")
    bar.close()
    return stream.getvalue()


def test_piped_output_is_a_few_lines_with_time_left():
    lines = _run(io.StringIO()).splitlines()
    assert 3 <= len(lines) <= 5
    assert all(line.startswith("case [") for line in lines)
    assert "left" in lines[1] and lines[-1].startswith("case [" + "#" * 24 + "] 100%")


def test_on_a_terminal_it_redraws_one_line():
    text = _run(Terminal())
    assert text.count("\n") == 1 and text.endswith("\n") and text.count("\r") == 100


def test_quiet_prints_nothing():
    progress.set_verbosity(progress.QUIET)
    try:
        assert _run(io.StringIO()) == "" and _run(Terminal()) == ""
    finally:
        progress.set_verbosity(progress.NORMAL)


def test_time_left_from_the_rate_so_far():
    bar = ProgressBar("x", stream=io.StringIO())
    assert bar.line(0.25, "", 30.0).endswith("0:30 elapsed, 1:30 left")
    assert format_seconds(3725) == "1:02:05"


def test_quiet_lasts_for_one_command_run_in_process():
    from chimerax.medseg.cli import main
    assert main(["models", "list", "--quiet"]) == 0
    assert progress.verbosity() == progress.NORMAL
