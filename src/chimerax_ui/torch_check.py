"""The first-use check: PyTorch is not part of ChimeraX, so tell a user without it exactly what to run."""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import MedSegError


def install_commands(executable: str | None = None, platform: str | None = None) -> list[str]:
    """The commands that install PyTorch into this ChimeraX: one for its command line, and the
    terminal ones (ChimeraX's own Python, via ``ChimeraX -m pip``) for the CPU or a CUDA build."""
    chimerax = _chimerax_program(Path(executable or sys.executable), platform or sys.platform)
    cpu = "https://download.pytorch.org/whl/cpu"
    return ["In ChimeraX's command line: pip install torch (the default build: CUDA on Linux, else CPU/mps)",
            f"From a terminal, CPU only: {chimerax} -m pip install torch --index-url {cpu}",
            f"From a terminal, NVIDIA GPU: {chimerax} -m pip install torch --index-url "
            "https://download.pytorch.org/whl/cu124 (pick the CUDA version your driver supports)"]


def _chimerax_program(executable: Path, platform: str) -> str:
    """The ChimeraX program beside this Python (macOS and Windows name it differently)."""
    folder = executable.parent
    for name in ("ChimeraX-console.exe", "ChimeraX", "chimerax"):
        if (folder / name).exists():
            return f'"{folder / name}"' if " " in str(folder) else str(folder / name)
    return "ChimeraX-console.exe" if platform.startswith("win") else "chimerax"


def require_torch() -> None:
    """Raise a MedSegError with the install commands when PyTorch cannot be imported."""
    try:
        import torch  # noqa: F401  (only whether it imports)
    except ImportError as exc:
        lines = "\n  ".join(install_commands())
        raise MedSegError(f"MedSeg needs PyTorch, which this ChimeraX does not have yet ({exc}). Install it, "
                          f"then run the command again:\n  {lines}") from None
