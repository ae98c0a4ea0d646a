"""The MedSeg panel's Python side, without Qt: the state the page shows, and the commands it sends.

The page (``panel/panel.html``) is a view on the ``segment`` commands: every control builds a
command string and sends it here (:meth:`PanelController.run`), which refuses anything but a
``segment`` command and runs it as typed. :meth:`PanelController.state` is everything the page
draws (models, open volumes, channel assignment, progress with time left, the last result's
structures); the GUI tool (``panel_tool.py``) pushes it to the page after every change. The
same two methods are what the headless tests drive.
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from chimerax.core.commands import run as run_command
from chimerax.map import Volume

from ..errors import MedSegError
from ..inference.options import DEVICE_NAMES, option_fields
from ..models.manifest import load_manifest
from ..models.model_folder import open_model_folder
from ..models.registry import model_statuses, resolve_model
from .cmd_segment import SegmentJob
from .tasks import running_tasks
from .volumes import label_statistics, label_surfaces, match_channels

PAGE = Path(__file__).resolve().parent / "panel" / "panel.html"


class PanelController:
    """One panel's link to a session: its state, and the commands its controls send."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.last_job: SegmentJob | None = None
        self.last_error: str | None = None
        self._channels: dict[str, list[str]] = {}  # model name -> channel names (opening a model takes time)

    # -- commands from the page --
    def run(self, command: str) -> Any:
        """Run one command the page sent; only ``segment ...`` commands are accepted."""
        words = shlex.split(command)
        if not words or words[0] != "segment":
            raise MedSegError(f"The MedSeg panel only sends segment commands; refused {command!r}.")
        self.last_error = None
        try:
            result = run_command(self.session, command)
        except Exception as exc:  # shown in the page as well as in the log
            self.last_error = str(exc)
            raise
        if isinstance(result, SegmentJob):
            self.last_job = result
        return result

    # -- what the page draws --
    def state(self) -> dict[str, Any]:
        return {"models": self._models(), "volumes": self._volumes(), "devices": list(DEVICE_NAMES),
                "options": [name for name, _ in option_fields()], "running": self._running(),
                "result": self._result(), "error": self.last_error}

    def _models(self) -> list[dict[str, Any]]:
        manifest = load_manifest()
        rows = []
        for status in model_statuses(manifest):
            entry = manifest.get(status.name)
            channels = self._channel_names(status.name, entry)
            rows.append({"name": status.name, "status": status.status, "task": status.task,
                         "size_mb": None if status.size is None else round(status.size / 1e6, 1),
                         "licence": entry.licence if entry else "", "modality": entry.modality if entry else "",
                         "channels": channels, "assignment": self.assignment(channels),
                         "usable": status.status in ("installed", "embedded", "installed (local)")})
        return rows

    def _channel_names(self, name: str, entry: Any) -> list[str]:
        if entry is not None and entry.channel_names:
            return list(entry.channel_names)
        if name not in self._channels:
            try:
                self._channels[name] = open_model_folder(resolve_model(name, offline=True)).channel_names
            except MedSegError:
                self._channels[name] = []
        return self._channels[name]

    def _volumes(self) -> list[dict[str, Any]]:
        """Open image volumes (not our label volumes), with a pre-filled channel assignment per model."""
        volumes = [m for m in self.session.models.list(type=Volume)
                   if not hasattr(m, "medseg_label_names") and m.parent is self.session.models.scene_root_model]
        return [{"id": v.id_string, "name": v.name} for v in volumes]

    def assignment(self, channels: list[str]) -> list[str | None]:
        """Volume id per channel: by name where unambiguous, else in the order opened."""
        volumes = self._volumes()
        if len(volumes) < len(channels) or not channels:
            return [volumes[i]["id"] if i < len(volumes) else None for i in range(len(channels))]
        names = [v["name"] for v in volumes]
        for start in range(len(volumes) - len(channels) + 1):  # the first window that matches by name
            order, by_name = match_channels(names[start:start + len(channels)], channels)
            if by_name:
                return [volumes[start + i]["id"] for i in order]
        return [v["id"] for v in volumes[:len(channels)]]

    def _running(self) -> dict[str, Any] | None:
        jobs = running_tasks(self.session, SegmentJob)
        if not jobs:
            return None
        job = jobs[-1]
        return {"title": job.title, "percent": round(100 * job.fraction, 1), "message": job.message,
                "seconds": round(job.seconds, 1), "seconds_left": None if job.seconds_left is None
                else round(job.seconds_left, 1)}

    def _result(self) -> dict[str, Any] | None:
        job = self.last_job
        if job is None or job.state != "done" or job.label_volume is None or job.label_volume.deleted:
            return None if job is None or job.state == "done" else {"state": job.state}
        volume, r = job.label_volume, job.request
        surfaces = {s.medseg_label_value: s for s in label_surfaces(self.session, volume)}
        voxel_mm3 = abs(float(volume.data.ijk_to_xyz_transform.determinant()))
        rows = []
        for value, name, count, mm3 in label_statistics(job.labels, r.label_names, voxel_mm3, r.members):
            surface = surfaces.get(value)
            color = surface.color if surface is not None else r.colors[value]
            rows.append({"value": value, "name": name, "voxels": count, "volume_ml": round(mm3 / 1000, 3),
                         "color": "#{:02x}{:02x}{:02x}".format(*(int(c) for c in color[:3])),
                         "shown": bool(surface is not None and surface.display), "has_surface": surface is not None})
        return {"state": "done", "volume": volume.id_string, "name": volume.name, "model": r.model_title,
                "seconds": round(job.seconds, 1), "rows": rows,
                "dicom": getattr(volume, "medseg_dicom_source", None) is not None}

