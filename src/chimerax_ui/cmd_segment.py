"""ChimeraX ``segment MODEL VOLUMES ...`` and ``segment stop``.

``segment`` checks its input at once (mistakes are ``UserError``s), opens the model folder once,
runs the prediction as a :class:`~.tasks.BackgroundTask` so ChimeraX stays responsive, and adds
the label volume and its surfaces on the main thread when done. ``segment stop`` cancels: the
engine stops at the next tile and no model is added. The prediction options are
``inference.options.PredictOptions``, the same as ``medseg predict``'s.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chimerax.core.commands import BoolArg, CmdDesc, EnumOf, FloatArg, ListOf, SaveFileNameArg, StringArg, register
from chimerax.map import MapsArg

from ..errors import MedSegError
from ..images import Image
from ..inference.ensemble_members import check_ensemble, open_members
from ..inference.label_values import output_members, output_names, output_values
from ..inference.options import PredictOptions, from_mapping, option_fields
from ..models.model_folder import ModelFolder
from ..models.multipart import open_any_model
from ..models.registry import resolve_model
from .cmd_results import FORMATS, output_format, segment_save
from .errors import user_errors
from .tasks import BackgroundTask, running_tasks
from .torch_check import require_torch
from .volumes import (
    add_label_surfaces,
    image_from_volumes,
    label_colors,
    label_statistics,
    label_table_html,
    make_label_volume,
    match_channels,
)

# How each kind of prediction option is typed in ChimeraX (see inference/options.py).
_ARGS = {"models": ListOf(StringArg), "names": ListOf(StringArg), "device": StringArg, "flag": BoolArg,
         "no-flag": BoolArg, "number": FloatArg, "text": StringArg, "path-or-flag": StringArg}
_DISPLAY_KEYWORDS = [("surfaces", BoolArg), ("smooth", BoolArg), ("name", StringArg), ("wait", BoolArg),
                     ("save", SaveFileNameArg), ("format", EnumOf(FORMATS))]


def register_commands(logger: Any) -> None:
    # the model(s) are the first argument (`segment A,B #1`: an ensemble), every other option a keyword
    keywords = [(name, _ARGS[meta["kind"]]) for name, meta in option_fields() if meta["kind"] != "models"]
    register("segment", CmdDesc(required=[("model", _ARGS["models"]), ("volumes", MapsArg)],
                                keyword=keywords + _DISPLAY_KEYWORDS,
                                synopsis="Segment medical image volumes with an nnU-Net model"), segment, logger=logger)
    register("segment stop", CmdDesc(synopsis="Stop running segmentations; nothing is added"), segment_stop,
             logger=logger)


@dataclass
class Request:
    """Everything one segmentation needs, checked on the main thread before the work starts."""

    folder: ModelFolder          # the (first) model
    options: PredictOptions
    model_title: str
    volumes: list
    label_names: dict[int, str]
    members: dict[int, tuple[int, ...]]
    colors: dict[int, tuple[int, int, int, int]]
    name: str
    surfaces: bool = True
    smooth: bool = False
    save: str | None = None     # write the labels here once shown (segment save)
    format: str | None = None
    ensemble: list[ModelFolder] = field(default_factory=list)  # every member, when several models are given


@user_errors
def segment(session: Any, model: Sequence[str] | str, volumes: Sequence, surfaces: bool = True, smooth: bool = False,
            name: str | None = None, wait: bool | None = None, save: str | None = None,
            format: str | None = None, **options: Any) -> SegmentJob:
    """Start segmenting ``volumes`` (one per model channel); returns the running job.

    ``model`` is one model or several of one dataset (``A,B``), whose probabilities are averaged.
    ``options`` are the prediction options (folds, device, fast, mirroring, step, ...).
    ``wait`` (default: true without a GUI, false in the GUI) blocks until the labels are shown.
    ``save FILE [format F]`` also writes the labels once they are shown (as ``segment save``).
    """
    models = [model] if isinstance(model, str) else list(model)
    settings = from_mapping(dict(_postprocess_value(options), models=models))
    request = prepare(session, models, list(volumes), settings, surfaces, smooth, name)
    if save:
        request.save, request.format = save, output_format(save, format)  # a bad name fails now, not after
    job = SegmentJob(session, request)
    job.start(wait)
    return job


def _postprocess_value(options: dict[str, Any]) -> dict[str, Any]:
    """``postprocess true|false|FILE``: ChimeraX gives the text."""
    value = options.get("postprocess")
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        options = dict(options, postprocess=value.lower() in ("true", "1"))
    return options


def prepare(session: Any, model: str | Sequence[str], volumes: list, options: PredictOptions,
            surfaces: bool = True, smooth: bool = False, name: str | None = None) -> Request:
    """Check everything and open the model(s) once; raises MedSegError for any mistake."""
    if not volumes:
        raise MedSegError("No volume given: name the open image volume(s) to segment, e.g. `segment MODEL #1`.")
    if options.statistics or options.split_classes:  # files beside an output file: `medseg predict` writes them
        raise MedSegError("statistics and splitClasses write files beside `medseg predict`'s output; in ChimeraX "
                          "the log lists each structure's volume, and `segment save` writes the labels.")
    models = [model] if isinstance(model, str) else list(model)
    ensemble = _open_members(models, options.configuration) if len(models) > 1 else []
    folder = ensemble[0] if ensemble else _open_model(models[0], options.configuration)
    model = " + ".join(models)
    volumes = _order_volumes(session, volumes, folder.channel_names, model)
    require_torch()
    from ..inference.device import select_device  # imports torch: not at command registration
    options.device = str(select_device(options.device))  # an unusable device is reported now, resolved once
    if ensemble:
        check_ensemble(ensemble, options)  # folds, postprocessing and options, before the work starts
    else:
        folder.select_folds(options.folds)
    values = output_values(folder, options.training_label_values)  # BraTS's own values for the brats models
    label_names = output_names(folder.labels.names, values)
    model_title = " + ".join(Path(m).name if ("/" in m or "\\" in m) else m for m in models)
    members = output_members(folder.labels.members(), values)
    return Request(folder, options, model_title, volumes, label_names, members,
                   label_colors(label_names, folder.dataset_json), name or f"{volumes[0].name} {model_title} labels",
                   surfaces, smooth, ensemble=ensemble)


def _open_model(model: str, configuration: str | None) -> ModelFolder:
    """The model folder for a name or path; never downloads (that is `segment fetch`)."""
    try:
        path = resolve_model(model, offline=True)
    except MedSegError as exc:
        raise MedSegError(f"{exc} List models with `segment models`.") from None
    return open_any_model(path, configuration)  # TotalSegmentator's multi-part models too


def _open_members(models: list[str], configuration: str | None) -> list[ModelFolder]:
    """Every member of an ensemble, checked against the others; never downloads."""
    try:
        return open_members(models, configuration, offline=True)
    except MedSegError as exc:
        raise MedSegError(f"{exc} List models with `segment models`.") from None


def _order_volumes(session: Any, volumes: list, channel_names: list[str], model: str) -> list:
    """Volumes in the model's channel order: by name where unambiguous, else as given."""
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


class SegmentJob(BackgroundTask):
    """One running segmentation; ``labels`` and ``models`` are set once it is delivered."""

    thread_name = "medseg-segment"

    def __init__(self, session: Any, request: Request) -> None:
        super().__init__(session, f"Segmentation of {request.volumes[0].name}")
        self.request = request
        self.labels = None
        self.label_volume = None
        self.models: list = []
        self.fraction = 0.0          # progress, for `segment stop`'s caller and the panel
        self.message = "starting"
        self._image: Image | None = None
        self._last_percent = -1

    def start(self, wait: bool | None = None) -> SegmentJob:
        r = self.request
        self._image, notes = image_from_volumes(r.volumes, r.folder.channel_names)  # reads volumes: main thread
        for note in notes:
            self.session.logger.info(note)
        z, y, x = self._image.shape
        self.session.logger.info(f"Segmenting {', '.join('#' + v.id_string for v in r.volumes)} with model "
                                 f"{r.model_title} ({x}x{y}x{z} voxels); `segment stop` cancels.")
        super().start(wait)
        return self

    def work(self) -> Any:
        predictor = _take_predictor(self.request)
        try:
            return predictor.predict(self._image, progress=self._progress, should_stop=self.stopping,
                                     missing_channels=self.request.options.missing_channels)
        finally:
            self._image = None
            _give_back_predictor(self.request, predictor)

    def _progress(self, fraction: float, message: str) -> None:
        self.fraction, self.message = fraction, message
        percent = int(fraction * 100)
        if percent != self._last_percent:
            self._last_percent = percent
            self.status(f"Segmenting {self.request.volumes[0].name}: {percent}% ({message})")

    def deliver(self, prediction: Any) -> None:
        try:
            self._show(prediction.labels)
        except Exception:
            for model in self.models:
                if not model.deleted:
                    model.delete()
            self.models = []
            raise
        passes = getattr(prediction, "passes", None)  # `adaptive true`: the work it spared, as medseg predict says
        if passes is not None:
            self.session.logger.info(f"Adaptive ensembling ran {passes}.")

    def cancelled(self) -> None:
        self.session.logger.info(f"Segmentation of {self.request.volumes[0].name} stopped; no models were added.")

    def _show(self, labels: Any) -> None:
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
        volume.medseg_dicom_source = getattr(r.volumes[0], "medseg_dicom_source", None)  # for DICOM-SEG
        self.label_volume = volume
        voxel_mm3 = abs(float(volume.data.ijk_to_xyz_transform.determinant()))
        stats = label_statistics(labels, r.label_names, voxel_mm3, r.members)
        seconds = self.seconds
        session.logger.info(label_table_html(stats, r.colors, f"{r.name} (#{volume.id_string}), "
                                                              f"model {r.model_title}, {seconds:.1f} s"),
                            is_html=True)
        session.logger.info(f"Segmented {r.volumes[0].name} with {r.model_title} in {seconds:.1f} s: label volume "
                            f"#{volume.id_string}, {len(surfaces)} surface(s).")
        if r.save:
            segment_save(session, volume, r.save, r.format, wait=self._foreground)

    @property
    def seconds_left(self) -> float | None:
        """Estimated from the progress so far; None until there is enough of it."""
        if self.finished or self.fraction < 0.03:
            return None
        return self.seconds * (1 - self.fraction) / self.fraction


# One loaded predictor is kept for the next run with the same settings (loading takes time);
# a job takes it out while it predicts, so two jobs never share one network.
_PREDICTOR_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def _predictor_key(r: Request) -> tuple:
    o = r.options
    return (tuple(str(f.path) for f in r.ensemble or [r.folder]), r.folder.configuration_name,
            tuple(o.folds or ()), o.device, o.effective_step, o.effective_mirroring, o.checkpoint,
            str(o.postprocess), tuple(o.roi_subset), o.training_label_values, o.force_split)


def _take_predictor(r: Request) -> Any:
    from ..inference.conventions import predictor_for  # imports torch: only in the worker, when first segmenting
    from ..inference.ensemble import EnsemblePredictor  # imports torch: only in the worker, when first segmenting
    with _CACHE_LOCK:
        cached = _PREDICTOR_CACHE.pop(_predictor_key(r), None)
    if cached is not None:
        return cached
    if r.ensemble:
        return EnsemblePredictor.from_models(r.ensemble, r.options)
    return predictor_for(r.folder, r.options)  # TotalSegmentator's parts; a cascade with its lowres stage


def _give_back_predictor(r: Request, predictor: Any) -> None:
    with _CACHE_LOCK:
        _PREDICTOR_CACHE.clear()
        _PREDICTOR_CACHE[_predictor_key(r)] = predictor


def segment_stop(session: Any) -> int:
    """Cancel every running segmentation of this session."""
    jobs = running_tasks(session, SegmentJob)
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
