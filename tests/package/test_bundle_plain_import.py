"""The package stays importable outside ChimeraX, without ChimeraX or torch."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path


SRC = Path(__file__).resolve().parents[2] / "src"


def test_plain_import_needs_neither_chimerax_nor_torch():
    code = ("import sys, chimerax.medseg as m, chimerax.medseg.cli, chimerax.medseg.inference.options; "
            "chimerax.medseg.cli.build_parser(); "  # every command's parser: `medseg --help` stays fast
            "heavy = sorted(k for k in sys.modules if k == 'torch' or k.startswith(('torch.', 'chimerax.core'))); "
            "print(m.__version__, heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "0.1.0 []"


def test_import_turns_on_huge_pages_for_torch_unless_the_user_chose():
    code = "import os, chimerax.medseg; print(os.environ['THP_MEM_ALLOC_ENABLE'])"
    for preset, expected in ((None, "1"), ("0", "0")):
        env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
        if preset is not None:
            env["THP_MEM_ALLOC_ENABLE"] = preset
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        assert out.stdout.strip() == expected


def test_only_the_chimerax_layer_imports_chimerax():
    """The engine never imports ChimeraX: only chimerax_ui/ (and bundle_api in __init__) may."""
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.relative_to(SRC).parts[0] in ("chimerax_ui", "__init__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            offenders += [f"{path.relative_to(SRC)}: {n}" for n in names
                          if n.startswith("chimerax") and not n.startswith("chimerax.medseg")]
    assert offenders == []
