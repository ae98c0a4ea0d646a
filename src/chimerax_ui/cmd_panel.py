"""ChimeraX ``segment panel``: open the MedSeg panel (Tools > Volume Data > MedSeg)."""
from __future__ import annotations

from typing import Any

from chimerax.core.commands import CmdDesc, register
from chimerax.core.commands import run as run_command

from ..errors import MedSegError
from .errors import user_errors

TOOL_NAME = "MedSeg"


def register_commands(logger: Any) -> None:
    register("segment panel", CmdDesc(synopsis="Show the MedSeg panel"), segment_panel, logger=logger)


@user_errors
def segment_panel(session: Any) -> None:
    if not session.ui.is_gui:
        raise MedSegError("The MedSeg panel needs the ChimeraX window; without it, use the segment commands "
                          "it issues (segment MODEL #1, segment stop, segment labels, segment save).")
    run_command(session, f"ui tool show {TOOL_NAME}")
