"""Predicting with a model that declares conventions (TotalSegmentator's), on the one pipeline.

Each part is an ordinary :class:`Predictor` on an ordinary :class:`Image`; what differs is only the
grid it is given (inference/canonical_grid.py: crop, canonical RAS, one spacing), the tile step and
mirroring (TotalSegmentator: 0.8 for its ``total`` tasks, else 0.5; no mirroring), and the merge:
parts run in order, each part's labels mapped to the combined values, a later part's label winning
wherever it has one (as TotalSegmentator combines them). ``--roi-subset`` runs only the parts that
hold the named structures, inside the box its coarse model finds around them.
"""
from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

import numpy as np

from ..cli_parser import close_matches
from ..errors import MedSegError
from ..images import Image
from ..models.conventions import Crop
from ..models.manifest import load_manifest
from ..models.model_folder import ModelFolder, open_model_folder
from ..models.multipart import ConventionModel, dataset_folders, find_convention_entry, open_convention_model
from ..models.registry import resolve_model
from .canonical_grid import crop_box, model_grid_shape, to_model_grid
from .canonical_grid import labels_to_input_grid as _back
from .cascade_predictor import load_predictor
from .options import PredictOptions
from .predictor import Prediction, Predictor
from .totalseg_clean_up import check_structures, clean_up
from .triple_split import check_slices, needs_split, slab_image, slabs

Progress = Callable[[float, str], None]


def open_predictor(path: str | os.PathLike, options: PredictOptions, save_probabilities: bool = False,
                   previous_predictions: str | os.PathLike | None = None):
    """A :class:`ConventionPredictor` for a model whose manifest entry declares conventions, else a
    :class:`Predictor` (a cascade stage's with its previous stage, or ``previous_predictions``);
    ``--roi-subset`` is refused for the latter (only merged label maps select parts)."""
    entry = find_convention_entry(Path(path), load_manifest())
    if entry is None:
        _check_plain(path, options)
        return load_predictor(open_model_folder(path, options.configuration), options, previous_predictions)
    if previous_predictions is not None:
        raise MedSegError(f"--prev-stage-predictions is for cascade models; {entry.name} is not one.")
    if save_probabilities:
        raise MedSegError(f"Probabilities are not written for {entry.name}: its models run on a resampled canonical "
                          "grid (and several parts are merged). Leave out --save-probabilities.")
    return ConventionPredictor.from_model(open_convention_model(Path(path), entry, options.configuration), options)


def predictor_for(folder: ModelFolder, options: PredictOptions):
    """The predictor for an opened model description (models/multipart.open_any_model): ChimeraX's ``segment``,
    which never downloads (a crop model must be installed: `segment fetch`)."""
    entry = find_convention_entry(folder.path, load_manifest())
    if entry is None:
        _check_plain(folder.path, options)
        return load_predictor(folder, options)
    model = open_convention_model(folder.path, entry, options.configuration)
    return ConventionPredictor.from_model(model, options, fetch=False)


def _check_plain(path, options: PredictOptions) -> None:
    if options.roi_subset:
        raise MedSegError("--roi-subset selects structures of TotalSegmentator's models (totalseg_total, ...); "
                          f"model {path} is not one. Leave it out.")
    if options.force_split:
        raise MedSegError("--force-split splits the image as TotalSegmentator does for its models (totalseg_total, "
                          f"...); model {path} is not one. Leave it out.")


@dataclasses.dataclass
class ConventionPredictor:
    """Runs a :class:`ConventionModel`; used where a :class:`Predictor` is (``predict``, ``label_names``)."""

    model_info: ConventionModel
    parts: list[Predictor]
    tables: list[np.ndarray]          # per part run: its label values -> the combined ones
    roi_values: list[int] | None = None
    crop_predictor: ConventionPredictor | None = None
    crop_structures: tuple[str, ...] = ()
    crop_margin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    force_split: bool = False         # three slabs along z whatever the size (TotalSegmentator's --force_split)

    @classmethod
    def from_model(cls, model: ConventionModel, options: PredictOptions, fetch: bool = True) -> ConventionPredictor:
        """Checks the ``--roi-subset`` names and finds the crop model (``fetch``: downloading it if needed
        and not offline), before any part is loaded."""
        roi_values = _roi_values(model, options.roi_subset) if options.roi_subset else None
        check_structures(model.conventions.clean_up, model.label_values, model.entry.name)
        crop = model.conventions.crop
        structures = crop.structures if crop else ()
        if roi_values is not None and model.conventions.roi_crop is not None:
            crop, structures = model.conventions.roi_crop, tuple(options.roi_subset)
        crop_predictor = _crop_predictor(model, crop, structures, options, fetch) if crop is not None else None
        wanted = [i for i, table in enumerate(model.tables)
                  if roi_values is None or np.isin(table[1:], roi_values).any()]
        part_options = _part_options(options, model.conventions.step)
        parts = [Predictor.from_model(model.parts[i], part_options) for i in wanted]
        return cls(model, parts, [model.tables[i] for i in wanted], roi_values, crop_predictor, structures,
                   crop.margin_mm if crop else (0.0, 0.0, 0.0), options.force_split)

    # --- what writers, previews and the CLI ask of a predictor -------------------------------

    @property
    def model(self) -> ModelFolder:
        return self.model_info.description()

    @property
    def label_names(self) -> dict[int, str]:
        names = {v: k for k, v in self.model_info.label_values.items()}
        if self.roi_values is not None:
            names = {v: n for v, n in names.items() if v in self.roi_values}
        return dict(sorted(names.items()))

    @property
    def label_members(self) -> dict[int, tuple[int, ...]]:
        """Each structure is its own label (no regions)."""
        return {value: (value,) for value in self.label_names}

    @property
    def channel_names(self) -> list[str]:
        return list(self.model_info.entry.channel_names)

    # --- prediction ---------------------------------------------------------------------------

    def predict(self, image: Image, save_probabilities: bool = False, progress: Progress | None = None,
                should_stop: Callable[[], bool] | None = None, missing_channels: Sequence[str] = ()) -> Prediction:
        """Labels on exactly ``image``'s grid, as TotalSegmentator would write them."""
        if save_probabilities or missing_channels:
            raise MedSegError(f"{self.model_info.entry.name} writes labels only: no probabilities, no missing "
                              "channels.")
        if image.num_channels != 1:
            raise MedSegError(f"{self.model_info.entry.name} takes one channel ({self.channel_names[0]}); "
                              f"the input has {image.num_channels}.")
        image.check_finite("The input image")
        start, report = time.perf_counter(), progress or (lambda fraction, message: None)
        volume = image.array[0].transpose(2, 1, 0)  # (x, y, z), as TotalSegmentator's nibabel arrays
        if self.force_split and self.crop_predictor is None:  # too few slices: refused before any prediction
            spacing = self.model_info.conventions.spacing_mm
            check_slices(model_grid_shape(volume.shape, image.affine, spacing)[2], self.model_info.entry.name)
        box = None
        if self.crop_predictor is not None:
            report(0.0, "finding the crop")
            box = self._crop_box(image, should_stop)
            if box is None:  # none of the structures: an empty result, as TotalSegmentator writes
                return Prediction(np.zeros(image.shape, dtype=np.uint8), None, {"total": time.perf_counter() - start})
        labels = self._predict_volume(volume, image.affine, box, report, should_stop)
        if self.roi_values is not None:
            labels = np.where(np.isin(labels, self.roi_values), labels, 0).astype(labels.dtype)
        report(1.0, "done")
        return Prediction(np.ascontiguousarray(labels.transpose(2, 1, 0)), None, {"total": time.perf_counter() - start})

    def predict_labels_xyz(self, volume, affine, progress=None, should_stop=None) -> np.ndarray:
        """The combined labels (x, y, z) of a volume (x, y, z) on its own grid, no crop."""
        return self._predict_volume(volume, affine, None, progress or (lambda f, m: None), should_stop)

    def _predict_volume(self, volume, affine, box, report: Progress, should_stop) -> np.ndarray:
        spacing = self.model_info.conventions.spacing_mm
        model_image, record = to_model_grid(volume, affine, spacing, box)
        data = np.asanyarray(model_image.dataobj)
        zooms = model_image.header.get_zooms()[:3]
        grid = Image(np.ascontiguousarray(data.transpose(2, 1, 0))[None].astype(np.float32),
                     (float(zooms[2]), float(zooms[1]), float(zooms[0])), model_image.affine)
        if needs_split(data.shape[:3], len(self.model_info.conventions.datasets) > 1, self.force_split):
            check_slices(grid.shape[0], self.model_info.entry.name)
            combined = np.zeros(grid.shape, dtype=np.int32)
            for index, slab in enumerate(slabs(grid.shape[0])):  # one slab's logits at a time
                step = _scaled(report, index / 3, 1 / 3, f"slab {index + 1}/3")
                part = self._predict_parts(slab_image(grid, slab.source), step, should_stop)
                combined[slab.target] = part[slab.keep]
        else:
            combined = self._predict_parts(grid, report, should_stop)
        labels = combined.transpose(2, 1, 0)
        steps = self.model_info.conventions.clean_up
        if steps:  # on the model grid, as TotalSegmentator cleans up before resampling back
            labels = clean_up(labels, steps, self.model_info.label_values, model_image.header.get_zooms()[:3])
        return _back(labels, record)

    def _predict_parts(self, grid: Image, report: Progress, should_stop) -> np.ndarray:
        """Every part on ``grid``, merged: labels (z, y, x) in the combined values."""
        combined = np.zeros(grid.shape, dtype=np.int32)
        for index, (part, table) in enumerate(zip(self.parts, self.tables)):
            share = 1.0 / len(self.parts)
            step = _scaled(report, 0.05 + 0.9 * index * share, 0.9 * share, f"part {index + 1}/{len(self.parts)}")
            labels = part.predict(grid, progress=step, should_stop=should_stop).labels
            mapped = table[np.clip(labels, 0, len(table) - 1)]
            np.copyto(combined, mapped, where=mapped != 0)  # a later part wins where it labels a voxel
        return combined

    def _crop_box(self, image: Image, should_stop=None):
        assert self.crop_predictor is not None
        volume = image.array[0].transpose(2, 1, 0)
        coarse = self.crop_predictor.predict_labels_xyz(volume, image.affine, should_stop=should_stop)
        wanted = [self.crop_predictor.model_info.label_values[name] for name in self.crop_structures]
        mask = np.isin(coarse, wanted)
        if not mask.any():
            return None
        zooms = np.sqrt((np.asarray(image.affine)[:3, :3] ** 2).sum(axis=0)).astype(np.float32)
        return crop_box(mask, zooms, self.crop_margin_mm)


def _scaled(report: Progress, done: float, share: float, label: str) -> Progress:
    return lambda fraction, message: report(done + share * fraction, f"{label}: {message}")


def _part_options(options: PredictOptions, step: float) -> PredictOptions:
    """TotalSegmentator's step and no mirroring, unless the user chose otherwise."""
    return dataclasses.replace(options, step=options.step if options.step is not None else step,
                               mirroring=False if options.mirroring is None else options.mirroring,
                               roi_subset=[], configuration=None, force_split=False)


def _roi_values(model: ConventionModel, names: Sequence[str]) -> list[int]:
    known = model.label_values
    unknown = [n for n in names if n not in known]
    if unknown:
        hints = "; ".join(f"{n!r}: did you mean {', '.join(repr(m) for m in close_matches(n, known))}?"
                          if close_matches(n, known) else f"{n!r}: no close match" for n in unknown)
        raise MedSegError(f"--roi-subset: no part of {model.entry.name} holds {', '.join(map(repr, unknown))} "
                          f"({hints}). Its structures are: {', '.join(known)}.")
    return [known[n] for n in names]


def _crop_predictor(model: ConventionModel, crop: Crop, structures: Sequence[str],
                    options: PredictOptions, fetch: bool) -> ConventionPredictor:
    """The coarse model that finds the crop: beside the model (TotalSegmentator's weights folder) or by name."""
    manifest = load_manifest()
    entry = manifest.get(crop.model)
    if entry is None or entry.conventions is None:
        raise MedSegError(f"The crop model {crop.model!r} of {model.entry.name} is not in the manifest.")
    here = {d: f for d, f in model.others.items() if d in entry.conventions.datasets}
    root = Path(os.path.commonpath([str(f) for f in here.values()])) if len(here) == len(entry.conventions.datasets) \
        else resolve_model(crop.model, offline=None if fetch else True)
    crop_model = open_convention_model(root, entry) if dataset_folders(root) else None
    if crop_model is None:
        raise MedSegError(f"The crop model {crop.model} was not found in {root}.")
    unknown = [s for s in structures if s not in crop_model.label_values]
    if unknown:
        raise MedSegError(f"The crop model {crop.model} does not know {', '.join(unknown)}; it cannot find the crop "
                          f"for {model.entry.name}.")
    plain = dataclasses.replace(options, roi_subset=[], configuration=None, force_split=False)  # never split
    return ConventionPredictor.from_model(crop_model, plain, fetch)
