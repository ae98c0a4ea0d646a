"""The MedSeg panel in the ChimeraX window (an HTML tool, as ChimeraX's own tools are).

Only a desktop ChimeraX (with Qt) can show it; everything it does goes through
``panel.PanelController``, which the headless tests drive. The page sends ``medseg:<command>``
links; this tool runs them and pushes the new state to the page, and refreshes it twice a
second while a segmentation runs.
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from chimerax.ui import HtmlToolInstance

from .cmd_segment import SegmentJob
from .panel import PAGE, PanelController
from .tasks import running_tasks


class MedSegPanel(HtmlToolInstance):
    SESSION_ENDURING = False
    SESSION_SAVE = False
    CUSTOM_SCHEME = "medseg"
    help = "help:user/tools/medseg.html"

    def __init__(self, session: Any, tool_name: str) -> None:
        super().__init__(session, tool_name, size_hint=(420, 640))
        self.controller = PanelController(session)
        self._was_running = False
        self.html_view.setUrl(PAGE.as_uri())
        self.html_view.loadFinished.connect(lambda ok: self.push_state())
        from Qt.QtCore import QTimer  # ChimeraX's Qt shim
        self._timer = QTimer()
        self._timer.timeout.connect(self._tick)
        self._timer.start(500)

    def handle_scheme(self, url: Any) -> None:
        command = unquote(url.path())
        try:
            self.controller.run(command)
        except Exception:  # the log shows it; the page shows the message
            pass
        self.push_state()

    def update_models(self, trigger_name: str, models: Any) -> None:
        self.push_state()  # volumes opened or closed: the channel choices change

    def _tick(self) -> None:
        running = bool(running_tasks(self.session, SegmentJob))
        if running or self._was_running:  # progress, then the result once
            self.push_state()
        self._was_running = running

    def push_state(self) -> None:
        self.html_view.runJavaScript(f"medsegPanel.update({json.dumps(self.controller.state())})")

    def delete(self) -> None:
        self._timer.stop()
        super().delete()
