"""The ChimeraX layer: the ``segment`` command family, volumes <-> images, label surfaces.

Only this sub-package (and ``bundle_api`` in the package's ``__init__``) imports ``chimerax.*``;
the engine never does. One module per command family; ``tasks`` runs long work off the main
thread; ``errors.user_errors`` turns the engine's MedSegError into ChimeraX's UserError.
"""
from __future__ import annotations

from typing import Any

from . import cmd_dicom, cmd_evaluate, cmd_models, cmd_panel, cmd_results, cmd_segment, cmd_train

COMMAND_FAMILIES = (cmd_segment, cmd_results, cmd_panel, cmd_models, cmd_dicom, cmd_evaluate, cmd_train)


def register_commands(logger: Any) -> None:
    """Register every ``segment`` command (ChimeraX calls this on first use of ``segment``)."""
    for family in COMMAND_FAMILIES:
        family.register_commands(logger)
