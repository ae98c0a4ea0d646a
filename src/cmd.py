"""The ChimeraX ``segment`` command family.

``segment MODEL VOLUMES ...`` checks its input at once (mistakes are ``UserError``s), runs the
prediction in a worker thread so ChimeraX stays responsive, and adds the label volume and its
surfaces on the main thread when done. ``segment stop`` cancels: the engine stops at the next
tile and no model is added. Other sub-commands live in their own modules
(``_EXTRA_COMMAND_MODULES``), each exposing ``register_commands(logger)``.
"""
from __future__ import annotations

import importlib
import threading
import time
from pathlib import Path
from typing import Sequence

from .errors import Cancelled, MedSegError

# Modules that add "segment <verb>" sub-commands; missing ones are skipped.
_EXTRA_COMMAND_MODULES = ["cmd_models", "cmd_dicom", "cmd_evaluate", "cmd_train"]

DEVICES = ("auto", "cpu", "cuda", "mps")


def register_commands(logger) -> None:
    """Register every ``segment`` command (ChimeraX calls this on first use of ``segment``)."""
    from chimerax.core.commands import register
    register("segment", _segment_desc(), segment, logger=logger)
    register("segment stop", _stop_desc(), segment_stop, logger=logger)
    provided = set()
    for name in _EXTRA_COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.{name}":
                continue
            raise
        module.register_commands(logger)
        provided.add(name)
    if "cmd_models" not in provided:
        register("segment models", _models_desc(), segment_models, logger=logger)


# --- segment MODEL VOLUMES ------------------------------------------------------------------------

def _segment_desc():
    from chimerax.core.commands import BoolArg, CmdDesc, EnumOf, FloatArg, ListOf, StringArg
    from chimerax.map import MapsArg
    return CmdDesc(
        required=[("model", StringArg), ("volumes", MapsArg)],
        keyword=[("folds", ListOf(StringArg)), ("device", EnumOf(DEVICES)), ("fast", BoolArg),
                 ("tta", BoolArg), ("step", FloatArg), ("surfaces", BoolArg), ("smooth", BoolArg),
                 ("name", StringArg), ("wait", BoolArg)],
        synopsis="Segment medical image volumes with an nnU-Net v2 model")


def segment(session, model: str, volumes: Sequence, folds: Sequence[str] | None = None, device: str = "auto",
            fast: bool = False, tta: bool | None = None, step: float | None = None, surfaces: bool = True,
            smooth: bool = False, name: str | None = None, wait: bool | None = None) -> "SegmentJob":
    """Start segmenting ``volumes`` (one per model channel); returns the running job.

    ``wait`` (default: true without a GUI, false in the GUI) blocks until the labels are shown.
    """
    from chimerax.core.errors import UserError
    try:
        request = _prepare(session, model, volumes, folds, device, fast, tta, step, surfaces, smooth, name)
    except MedSegError as exc:
        raise UserError(str(exc)) from None
    job = SegmentJob(session, request)
    job.start()
    if wait if wait is not None else not session.ui.is_gui:
        job.wait()
        if job.error is not None:
            raise UserError(str(job.error))
    return job


class Request:
    """Everything one segmentation needs, checked on the main thread before the work starts."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def _prepare(session, model, volumes, folds, device, fast, tta, step, surfaces, smooth, name) -> Request:
    if not volumes:
        raise MedSegError("No volume given: name the open image volume(s) to segment, e.g. `segment MODEL #1`.")
    if step is not None and not 0 < step <= 1:
        raise MedSegError(f"step must be in (0, 1] (a fraction of the patch size); got {step}.")
    folder = _open_model(model)
    channel_names = folder.channel_names
    volumes = _order_volumes(session, list(volumes), channel_names, model)
    from .inference.device import select_device
    select_device(device)  # an unusable device is a mistake to report now, not later
    if folds is not None:
        folder.select_folds(folds)
    from .display import label_colors
    label_names = folder.labels.names
    model_title = Path(model).name if ("/" in model or "\\" in model) else model
    return Request(model=model, model_path=folder.path, model_title=model_title,
                   configuration=folder.configuration_name, folds=list(folds) if folds else None,
                   device=device, fast=fast, tta=tta, step=step, surfaces=surfaces, smooth=smooth,
                   volumes=volumes, channel_names=channel_names, label_names=label_names,
                   members=folder.labels.members(), colors=label_colors(label_names, folder.dataset_json),
                   name=name or f"{volumes[0].name} {model_title} labels")


def _open_model(model: str):
    """The model folder for a name or path; never downloads (that is `segment fetch`)."""
    from .models.model_folder import open_model_folder
    from .models.registry import resolve_model
    try:
        path = resolve_model(model, offline=True)
    except MedSegError as exc:
        raise MedSegError(f"{exc} List models with `segment models`.") from None
    return open_model_folder(path)


def _order_volumes(session, volumes: list, channel_names: list[str], model: str) -> list:
    """Volumes in the model's channel order: by name where unambiguous, else as given."""
    from .display import match_channels
    if len(volumes) != len(channel_names):
        given = ", ".join(f"#{v.id_string}" for v in volumes)
        raise MedSegError(f"Model {model} expects {len(channel_names)} channel(s): {', '.join(channel_names)}; "
                          f"{len(volumes)} volume(s) were given ({given}). Give one volume per channel, "
                          "in that order or named after the channels.")
    order, by_name = match_channels([v.name for v in volumes], channel_names)
    if len(volumes) > 1:
        how = "by name" if by_name else "in the order given"
        pairs = ", ".join(f"{c} = #{volumes[i].id_string}" for c, i in zip(channel_names, order))
        session.logger.info(f"Channels matched {how}: {pairs}")
    return [volumes[i] for i in order]


class SegmentJob:
    """One running segmentation. ``state``: running, done, cancelled or failed."""

    def __init__(self, session, request: Request):
        self.session = session
        self.request = request
        self.state = "running"
        self.error: Exception | None = None
        self.models: list = []
        self.labels = None
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._delivered = False
        self._prediction = None
        self._failure: BaseException | None = None
        self._last_percent = -1
        self._thread: threading.Thread | None = None

    # -- the worker (no ChimeraX calls except thread-safe status messages) --
    def start(self) -> None:
        from .display import image_from_volumes
        r = self.request
        image, notes = image_from_volumes(r.volumes, r.channel_names)  # reads volumes: main thread
        for note in notes:
            self.session.logger.info(note)
        self.session.logger.info(f"Segmenting {', '.join('#' + v.id_string for v in r.volumes)} with model "
                                 f"{r.model_title} ({image.shape[2]}x{image.shape[1]}x{image.shape[0]} voxels); "
                                 "`segment stop` cancels.")
        _running_jobs(self.session).append(self)
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._work, args=(image,), name="medseg-segment", daemon=True)
        self._thread.start()

    def _work(self, image) -> None:
        try:
            predictor = _take_predictor(self.request)
            try:
                self._prediction = predictor.predict(image, progress=self._progress, should_stop=self._stop.is_set)
            finally:
                _give_back_predictor(self.request, predictor)
        except BaseException as exc:  # reported on the main thread by _deliver
            self._failure = exc
        finally:
            self._finished.set()
            if self.session.ui.is_gui:
                self.session.ui.thread_safe(self._deliver)

    def _progress(self, fraction: float, message: str) -> None:
        percent = int(fraction * 100)
        if percent != self._last_percent:
            self._last_percent = percent
            text = f"Segmenting {self.request.volumes[0].name}: {percent}% ({message})"
            self.session.ui.thread_safe(self.session.logger.status, text)

    # -- control --
    def stop(self) -> None:
        """Ask the engine to stop at the next tile; no models will be added."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> "SegmentJob":
        """Block until the work ends, then add the results (call on the main thread)."""
        if not self._finished.wait(timeout):
            raise TimeoutError(f"segmentation still running after {timeout} s")
        self._deliver()
        return self

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    # -- results, on the main thread --
    def _deliver(self) -> None:
        if self._delivered:
            return
        self._delivered = True
        jobs = _running_jobs(self.session)
        if self in jobs:
            jobs.remove(self)
        logger, r = self.session.logger, self.request
        failure = self._failure
        if failure is None and self._stop.is_set():
            failure = Cancelled("stopped")
        if isinstance(failure, Cancelled):
            self.state = "cancelled"
            logger.status("")
            logger.info(f"Segmentation of {r.volumes[0].name} stopped; no models were added.")
            return
        if failure is not None:
            self.state = "failed"
            if isinstance(failure, MedSegError):
                self.error = failure
                logger.error(f"Segmentation of {r.volumes[0].name} failed: {failure}")
                return
            self.error = failure
            logger.report_exception(preface="Segmentation failed",
                                    exc_info=(type(failure), failure, failure.__traceback__))
            return
        try:
            self._show(self._prediction.labels)
        except Exception as exc:
            self.state, self.error = "failed", exc
            for model in self.models:
                if not model.deleted:
                    model.delete()
            self.models = []
            raise
        self.state = "done"

    def _show(self, labels) -> None:
        from .display import add_label_surfaces, label_statistics, label_table_html, make_label_volume
        r, session = self.request, self.session
        if any(v.deleted for v in r.volumes):
            raise MedSegError("An input volume was closed while it was being segmented; nothing was added.")
        self.labels = labels
        volume = make_label_volume(session, labels, r.volumes[0], r.name, r.label_names, r.colors)
        volume.medseg_label_members = dict(r.members)  # regions, for `segment evaluate`
        session.models.add([volume])
        self.models.append(volume)
        surfaces = []
        if r.surfaces:
            surfaces = add_label_surfaces(session, volume, r.label_names, r.colors, smooth=r.smooth)
            self.models.extend(surfaces)
            volume.display = False  # the surfaces show the labels
        else:
            volume.set_display_style("image")  # drawn with the label colours (segment_colors)
        voxel_mm3 = abs(float(volume.data.ijk_to_xyz_transform.determinant()))
        stats = label_statistics(labels, r.label_names, voxel_mm3, r.members)
        seconds = time.perf_counter() - self._started
        session.logger.status("")
        session.logger.info(label_table_html(stats, r.colors, f"{r.name} (#{volume.id_string}), "
                                                              f"model {r.model_title}, {seconds:.1f} s"),
                            is_html=True)
        session.logger.info(f"Segmented {r.volumes[0].name} with {r.model_title} in {seconds:.1f} s: label volume "
                            f"#{volume.id_string}, {len(surfaces)} surface(s).")


def _running_jobs(session) -> list:
    jobs = getattr(session, "_medseg_jobs", None)
    if jobs is None:
        jobs = session._medseg_jobs = []
    return jobs


# One loaded predictor is kept for the next run with the same settings (loading takes time);
# a job takes it out while it predicts, so two jobs never share one network.
_PREDICTOR_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def _predictor_key(r: Request) -> tuple:
    return (str(r.model_path), r.configuration, tuple(r.folds or ()), r.device, r.fast, r.tta, r.step)


def _take_predictor(r: Request):
    with _CACHE_LOCK:
        cached = _PREDICTOR_CACHE.pop(_predictor_key(r), None)
    if cached is not None:
        return cached
    from .inference.predictor import Predictor
    return Predictor.from_folder(r.model_path, folds=r.folds, device=r.device, fast=r.fast,
                                 use_mirroring=r.tta, step_size=r.step, configuration=r.configuration)


def _give_back_predictor(r: Request, predictor) -> None:
    with _CACHE_LOCK:
        _PREDICTOR_CACHE.clear()
        _PREDICTOR_CACHE[_predictor_key(r)] = predictor


# --- segment stop ------------------------------------------------------------------------------

def _stop_desc():
    from chimerax.core.commands import CmdDesc
    return CmdDesc(synopsis="Stop running segmentations; nothing is added")


def segment_stop(session) -> int:
    """Cancel every running segmentation of this session."""
    jobs = list(_running_jobs(session))
    if not jobs:
        session.logger.info("No segmentation is running.")
        return 0
    for job in jobs:
        job.stop()
    session.logger.status(f"Stopping {len(jobs)} segmentation(s)...")
    if not session.ui.is_gui:  # no event loop to deliver later: finish now
        for job in jobs:
            job.wait()
    return len(jobs)


# --- segment models (a minimal listing until cmd_models provides the full one) -----------------

def _models_desc():
    from chimerax.core.commands import CmdDesc
    return CmdDesc(synopsis="List installed and available segmentation models")


def segment_models(session) -> list:
    """Log the manifest's models with their state, channels and labels."""
    import html
    from chimerax.core.errors import UserError
    from .models.manifest import load_manifest
    from .models.registry import model_statuses
    try:
        manifest = load_manifest()
        statuses = model_statuses(manifest)
    except MedSegError as exc:
        raise UserError(str(exc)) from None
    rows = []
    for status in statuses:
        entry = manifest.get(status.name)
        channels = ", ".join(entry.channel_names) if entry else ""
        labels = entry.label_names() if entry else []
        shown = ", ".join(labels[:8]) + (f", ... ({len(labels)} labels)" if len(labels) > 8 else "")
        rows.append(f"<tr><td>{html.escape(status.name)}</td><td>{html.escape(status.status)}</td>"
                    f"<td>{html.escape(channels)}</td><td>{html.escape(shown)}</td>"
                    f"<td>{html.escape(status.task)}</td></tr>")
    session.logger.info("<table border=1 cellpadding=4 cellspacing=0><caption>Segmentation models</caption>"
                        "<tr><th>Name</th><th>Status</th><th>Channels</th><th>Labels</th><th>Task</th></tr>"
                        + "".join(rows) + "</table>", is_html=True)
    return [s.name for s in statuses]
