"""The package stays importable outside ChimeraX, without ChimeraX or torch."""
from __future__ import annotations

import os
import subprocess
import sys


def test_plain_import_needs_neither_chimerax_nor_torch():
    code = ("import sys, chimerax.medseg as m, chimerax.medseg.display, chimerax.medseg.cmd; "
            "heavy = sorted(k for k in sys.modules if k == 'torch' or k.startswith(('torch.', 'chimerax.core'))); "
            "print(m.__version__, heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "0.1.0 []"


def test_channel_matching_by_name_and_by_order():
    from chimerax.medseg.display import match_channels
    assert match_channels(["x_flair", "x_t1"], ["T1", "FLAIR"]) == ([1, 0], True)
    assert match_channels(["a", "b"], ["T1", "T2"]) == ([0, 1], False)
    assert match_channels(["t1_t2", "t1"], ["T1", "T2"]) == ([0, 1], False)  # ambiguous


def test_import_turns_on_huge_pages_for_torch_unless_the_user_chose():
    code = "import os, chimerax.medseg; print(os.environ['THP_MEM_ALLOC_ENABLE'])"
    for preset, expected in ((None, "1"), ("0", "0")):
        env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
        if preset is not None:
            env["THP_MEM_ALLOC_ENABLE"] = preset
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        assert out.stdout.strip() == expected
