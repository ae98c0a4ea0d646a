"""docs/workflow.md runs as written: every command of its ```bash blocks, in order, exits 0.

The page starts from the data scripts/make_workflow_study.py makes (its first command), in a fresh
home folder; the shell's working folder and exported variables carry from one command to the next,
as in a terminal. A command marked ``# not run in the tests: REASON`` is skipped with the reason
printed. Afterwards the files the page says appear must be there.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "workflow.md"
SKIP_MARK = "# not run in the tests:"
# files and folders the page says the commands write, relative to the walk-through folder
EXPECTED = [
    "studies/LUNG1-001/RTSTRUCT/reader2.dcm",
    "pretrained/Dataset901_PublicLung/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_all/checkpoint_final.pth",
    "look/2_CT_chest_reader1_rtstruct.nii.gz",
    "look/2_CT_chest_reader1_rtstruct.json",
    "medseg_data/raw/Dataset102_Lung/annotators/r3/LUNG1-001.nii.gz",
    "medseg_data/raw/Dataset103_LungTest/labelsTr/LUNG1-011.nii.gz",
    "medseg_data/preprocessed/Dataset102_Lung/nnUNetPlans_from_Dataset901_PublicLung.json",
    "hard/hard_cases.csv",
    "hard/splits_final.json",
    "medseg_data/results/Dataset102_Lung/nnUNetTrainer_5epochs__nnUNetPlans_from_Dataset901_PublicLung__3d_fullres/"
    "fold_0/checkpoint_final.pth",
    "compare/comparison.csv",
    "stability/stability.csv",
    "stability/inter_reference.csv",
    "LUNG1-011_gtv_rtstruct.dcm",
]


def page_commands(text: str) -> list[str]:
    """The commands of the page's ```bash blocks in order (continued lines joined, comments dropped)."""
    commands: list[str] = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        pending = ""
        for line in block.splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            pending += line + "\n"
            if not line.rstrip().endswith("\\"):
                commands.append(pending.rstrip("\n"))
                pending = ""
        assert not pending, f"a bash block ends inside a continued command: {pending!r}"
    return commands


def skip_reason(command: str) -> str | None:
    return command.split(SKIP_MARK, 1)[1].strip() if SKIP_MARK in command else None


def run_in_shell(command: str, state: Path, env: dict) -> subprocess.CompletedProcess:
    """Run one command in bash after restoring the previous command's folder and exports; save them after."""
    script = (f'[ -f "{state}.env" ] && source "{state}.env"\ncd "$(cat "{state}.cwd")"\n'
              f"{command}\n__rc=$?\nexport -p > \"{state}.env\"\npwd > \"{state}.cwd\"\nexit $__rc\n")
    return subprocess.run(["bash", "-o", "pipefail", "-c", script], env=env, capture_output=True, text=True)


def clean_env(home: Path) -> dict:
    """A terminal of a new user: the test venv first on PATH, no data roots set, one thread per process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_") and k != "MEDSEG_DATA"}
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    return env


def test_page_commands_parse():
    """The extraction the walk-through relies on: continuations, comments, the skip mark."""
    text = ("x\n```bash\n# a comment\nmedseg a \\\n    --b 1\nmedseg c  " + SKIP_MARK + " needs a GPU\n```\n"
            "```\nnot bash\n```\n```bash\nmedseg d\n```\n")
    commands = page_commands(text)
    assert commands == ["medseg a \\\n    --b 1", f"medseg c  {SKIP_MARK} needs a GPU", "medseg d"]
    assert [skip_reason(c) for c in commands] == [None, "needs a GPU", None]


def test_workflow_page_runs_as_written(tmp_path):
    text = PAGE.read_text()
    commands = page_commands(text)
    assert commands[0].startswith("python scripts/make_workflow_study.py"), "the page starts from the data script"
    state = tmp_path / "shell"
    Path(f"{state}.cwd").write_text(str(REPO))   # the first command runs in the checkout
    env = clean_env(tmp_path / "home")
    (tmp_path / "home").mkdir()
    for number, command in enumerate(commands, start=1):
        reason = skip_reason(command)
        if reason:
            print(f"[{number}] skipped ({reason}): {command}")
            continue
        start = time.monotonic()
        result = run_in_shell(command, state, env)
        print(f"[{number}] $ {command}   ({time.monotonic() - start:.1f} s)\n{result.stdout[-3000:]}")
        assert result.returncode == 0, f"command {number} failed: {command}\n{result.stdout[-3000:]}\n{result.stderr}"
    walk = tmp_path / "home" / "medseg_workflow"
    for relative in EXPECTED:
        assert Path(relative).name in text, f"the page does not mention {relative}"
        assert (walk / relative).exists(), f"{relative} was not written"
    # what the page says these files hold: the two models side by side, the readers' pairs
    header = (walk / "compare" / "comparison.csv").read_text().splitlines()[0].split(",")
    assert {"dice_a", "dice_b", "hd95_a", "hd95_b"} <= set(header)
    pairs = (walk / "stability" / "inter_reference.csv").read_text().splitlines()[1:]
    assert {tuple(line.split(",")[1:3]) for line in pairs} == {("r1", "r2"), ("r1", "r3"), ("r2", "r3")}
