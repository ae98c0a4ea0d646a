"""A ChimeraX without PyTorch: `segment` says exactly what to run instead of failing on an import."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# torch made unimportable, as in a fresh ChimeraX (sys.modules[name] = None makes `import` fail)
SCRIPT = f"""
import sys
sys.modules["torch"] = None
sys.path.insert(0, {str(REPO / "scripts")!r})
import numpy as np
import chimerax_headless as h
h.import_chimerax_package()
from chimerax.core.commands import run
from chimerax.core.errors import UserError
s = h.start_session()
ids = [h.add_volume(s, np.ones((4, 5, 6), np.float32), (0, 0, 0), (1, 1, 1), None, f"v{{i}}").id_string
       for i in range(4)]
try:
    run(s, "segment example " + " ".join("#" + i for i in ids))
except UserError as exc:
    print("USERERROR", exc)
"""


def test_segment_without_torch_tells_what_to_install():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "USERERROR MedSeg needs PyTorch" in out.stdout
    assert "pip install torch" in out.stdout and "-m pip install torch --index-url https://download.pytorch.org/whl/cpu" \
        in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
