"""The predictor: an nnU-Net v2 model folder + an image -> a label map on the image's grid."""
from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import MedSegError
from ..images import Image
from ..models.checkpoint import load_checkpoint
from ..models.model_folder import ModelFolder, open_model_folder, resolve_configuration
from ..network.build import build_network
from ..network.slabs import reusing_buffers
from ..preprocessing.pipeline import preprocess
from .adaptive import Passes, adaptive_logits
from .cascade import previous_stage_input, previous_stage_name
from .device import select_device
from .device_fallback import with_cpu_results_fallback
from .export import export
from .label_values import apply_output_values, output_members, output_names, output_values
from .missing_channels import allows_missing_channels, check_missing_channels, zero_channels
from .options import DEFAULT_STEP, PredictOptions
from .postprocessing import apply_postprocessing, find_postprocessing_file, load_postprocessing
from .sliding_window import SlidingWindow, mirror_combinations

_DATA = Path(__file__).resolve().parent.parent / "data"


def example_model_path() -> Path:
    """The small model embedded in the package (no download needed)."""
    return _DATA / "example_model"


def example_case_paths() -> list[Path]:
    """The channel files of the embedded example case, in channel order."""
    return sorted((_DATA / "example_case").glob("*_[0-9][0-9][0-9][0-9].nii.gz"))


@dataclass
class Prediction:
    labels: np.ndarray                       # (z, y, x) on the input grid
    probabilities: np.ndarray | None = None  # (k, z, y, x) float32
    timings: dict[str, float] = field(default_factory=dict)
    passes: Passes | None = None             # with adaptive ensembling: the passes it ran


@dataclass
class Predictor:
    """Runs one model configuration over images; build it with :meth:`from_folder`.

    Example:
        >>> p = Predictor.from_folder("Dataset101_X/nnUNetTrainer__nnUNetPlans__3d_fullres", folds=[0])
        >>> labels = p.predict(read_case(["case_0000.nii.gz", "case_0001.nii.gz"])).labels
    """

    model: ModelFolder
    fold_weights: list[dict]
    device: torch.device
    step: float = DEFAULT_STEP
    mirroring: bool = True
    mirror_axes: tuple[int, ...] = (0, 1, 2)
    postprocessing: list | None = None
    allows_missing_channels: bool = False  # trained with channel dropout (medseg train --channel-dropout)
    adaptive_threshold: float | None = None  # adaptive ensembling (inference/adaptive.py); None: every pass
    output_values: dict[int, int] | None = None  # the field's label values (BraTS's), applied last; None: the model's
    _network: torch.nn.Module | None = None

    @classmethod
    def from_folder(cls, model: str | os.PathLike, options: PredictOptions | None = None,
                    **settings: Any) -> Predictor:
        """A predictor for a model folder or zip; ``settings`` are :class:`PredictOptions` fields
        (``folds=[0], device="cpu", mirroring=False, ...``) when no ``options`` are given."""
        options = options or PredictOptions(**settings).validate()
        return cls.from_model(open_model_folder(model, options.configuration), options)

    @classmethod
    def from_model(cls, folder: ModelFolder, options: PredictOptions) -> Predictor:
        """A predictor for an opened model folder: loads the chosen folds' checkpoints once."""
        chosen = folder.select_folds(options.folds)
        weights, axes, missing_ok = [], None, True
        for fold in chosen:
            checkpoint = load_checkpoint(folder.checkpoint_path(fold, options.checkpoint))
            weights.append(checkpoint["network_weights"])
            missing_ok = missing_ok and allows_missing_channels(checkpoint)
            if "inference_allowed_mirroring_axes" in checkpoint:  # None: trained without mirroring (nnU-Net)
                axes = tuple(checkpoint["inference_allowed_mirroring_axes"] or ())
            if options.configuration is None:  # the checkpoint knows its configuration better than a folder name
                folder = _with_checkpoint_configuration(folder, checkpoint)
        if axes is None:  # an older checkpoint without the key: every axis, as nnU-Net
            axes = tuple(range(len(folder.configuration["patch_size"])))
        steps = _postprocessing_steps(folder, chosen, options.postprocess)
        return cls(folder, weights, select_device(options.device), options.effective_step,
                   options.effective_mirroring, tuple(int(a) for a in axes), steps, missing_ok,
                   options.adaptive_threshold if options.adaptive else None,
                   output_values(folder, options.training_label_values))

    @property
    def channel_names(self) -> list[str]:
        return self.model.channel_names

    @property
    def label_names(self) -> dict[int, str]:
        """Names by the value written (the field's values where the model's install maps them)."""
        return output_names(self.model.labels.names, self.output_values)

    @property
    def label_members(self) -> dict[int, tuple[int, ...]]:
        """The written values each label or region covers."""
        return output_members(self.model.labels.members(), self.output_values)

    @property
    def is_region_based(self) -> bool:
        return self.model.labels.is_region_based

    def network(self):
        if self._network is None:
            net = build_network(self.model.configuration["architecture"], self.model.num_input_channels,
                                self.model.labels.num_outputs)  # a cascade stage: + the one-hot previous stage
            self._network = net.to(self.device).eval()
            if self.device.type == "cuda":  # fixed tile shapes: let cuDNN pick its fastest kernels once (as nnU-Net)
                torch.backends.cudnn.benchmark = True
        return self._network

    def check_image(self, image: Image) -> None:
        """Refuse images the model cannot take, with a message saying what to fix."""
        expected = self.channel_names
        if image.num_channels != len(expected):
            raise MedSegError(f"The model expects {len(expected)} channel(s) ({', '.join(expected)}) "
                              f"but the input has {image.num_channels}.")
        image.check_finite("The input image")

    def predict(self, image: Image, save_probabilities: bool = False,
                progress: Callable[[float, str], None] | None = None,
                should_stop: Callable[[], bool] | None = None,
                missing_channels: Sequence[str] = (), previous_stage: np.ndarray | None = None) -> Prediction:
        """Segment ``image``; returns labels on exactly its grid.

        ``previous_stage``: for a cascade stage, the previous stage's labels (z, y, x) on the image's
        grid (inference/cascade.py; ``cascade_predictor.CascadePredictor`` runs both stages).

        ``missing_channels`` names channels the image lacks (its channels are the others, in
        order); only models trained with channel dropout accept that: the missing ones are
        zero after normalization, as in training, and a warning says so.
        """
        if save_probabilities and self.adaptive_threshold is not None:
            raise MedSegError("Probabilities cannot be saved with adaptive ensembling: they would be the full "
                              "ensemble's only where every pass ran. Leave out --adaptive, or --save-probabilities.")
        missing = self._missing_indices(missing_channels)
        if missing:
            image = self._with_zero_channels(image, missing)
        self.check_image(image)
        config = self.model.configuration
        if previous_stage_name(config) and previous_stage is None:
            raise MedSegError(f"Model {self.model.path.name} is a cascade stage: it needs the "
                              f"{previous_stage_name(config)} stage's segmentation of the case as input.")
        report = progress or (lambda fraction, message: None)
        timings, start = {}, time.perf_counter()
        along = None  # nnU-Net v2 preprocesses it with the image, as a label map (signed: -1 marks outside)
        if previous_stage is not None and not config.get("previous_stage_uncropped"):
            along = np.asarray(previous_stage, dtype=np.int32)[None]
        data, record, seg = preprocess(image.array, image.spacing, self.model.plans, config, seg=along)
        if missing:
            data = zero_channels(data, missing)
        if previous_stage is not None:
            data = previous_stage_input(data, seg, previous_stage, self.model)
        timings["preprocess"] = time.perf_counter() - start
        report(0.02, "preprocessed")
        logits, passes = self.predict_logits(torch.from_numpy(data), report, should_stop, timings)
        timings["network"] = time.perf_counter() - start - timings["preprocess"]
        report(0.97, "exporting")
        labels, probabilities = export(logits, record, config, self.model.labels, save_probabilities)
        if self.postprocessing:
            labels = apply_postprocessing(labels, self.postprocessing, image.spacing)
        if self.output_values:  # after postprocessing, whose rules name the model's own values
            labels = apply_output_values(labels, self.output_values)
        timings["total"] = time.perf_counter() - start
        report(1.0, "done")
        return Prediction(labels, probabilities, timings, passes)

    def _missing_indices(self, names: Sequence[str]) -> list[int]:
        if not names:
            return []
        unknown = [n for n in names if n not in self.channel_names]
        if unknown:
            raise MedSegError(f"Unknown channel(s) {', '.join(unknown)}; the model's channels are "
                              f"{', '.join(self.channel_names)}.")
        warnings.warn(check_missing_channels(list(names), self.allows_missing_channels), stacklevel=1)
        return [self.channel_names.index(n) for n in names]

    def _with_zero_channels(self, image: Image, missing: list[int]) -> Image:
        present = [c for c in range(len(self.channel_names)) if c not in missing]
        if image.num_channels != len(present):
            raise MedSegError(f"With {len(missing)} channel(s) missing the model needs {len(present)} input "
                              f"channel(s) ({', '.join(self.channel_names[c] for c in present)}); "
                              f"got {image.num_channels}.")
        array = np.zeros((len(self.channel_names), *image.shape), dtype=np.float32)
        array[present] = image.array
        return Image(array, image.spacing, image.affine, image.header)

    def predict_logits(self, data, progress=None, should_stop=None, timings: dict | None = None,
                       ) -> tuple[torch.Tensor, Passes | None]:
        """Preprocessed data (c, ...) -> logits averaged over folds (in logit space, as nnU-Net), and the
        passes adaptive ensembling ran (None without it). ``timings`` receives "forward": the seconds
        spent in the network's forward passes."""
        config = self.model.configuration
        net = self.network()
        window = SlidingWindow(net, config["patch_size"], self.model.labels.num_outputs, self.step,
                               self.mirror_axes if self.mirroring else (), self.device,
                               **_averaging(config, self.model.labels))
        n = len(self.fold_weights)
        adaptive = self.adaptive_threshold is not None and n * len(mirror_combinations(window.mirror_axes)) > 1

        def run() -> tuple[torch.Tensor | None, Passes | None]:
            if adaptive and self.adaptive_threshold is not None:  # adaptive implies a threshold
                # the stages switch folds tile by tile: each fold's weights on the device once, not copied each time
                on_device = [{k: v.to(self.device) for k, v in w.items()} for w in self.fold_weights] \
                    if self.device.type != "cpu" else self.fold_weights
                return adaptive_logits(window, data, on_device,
                                       lambda weights: _load_weights(net, weights, self.model.path),
                                       self.adaptive_threshold, self.is_region_based, progress, should_stop)
            total = None
            for i, weights in enumerate(self.fold_weights):
                _load_weights(net, weights, self.model.path)
                # one fold: the float16 accumulator goes to the export as it is (a float32 copy of a
                # whole-body CT's logits would be GBs); folds are summed in float32
                logits = window(data, progress, should_stop, done=0.02 + 0.95 * i / n, share=0.95 / n,
                                keep_accumulator_dtype=n == 1)
                total = logits if total is None else total.add_(logits)
            return total, None

        with torch.inference_mode(), reusing_buffers():  # every pass, every fold asks for the same feature maps
            total, passes = with_cpu_results_fallback(window, run)  # nnU-Net's retry after CUDA out-of-memory
        if total is None:
            raise MedSegError("The predictor has no folds' weights to run.")
        if not adaptive and n > 1:
            total = total / n
        if timings is not None:
            timings["forward"] = window.forward_seconds
        return total, passes


def _averaging(config: dict, labels) -> dict:
    """nnU-Net v1 models average probabilities in float32 (on the CPU, as v1 does); v2 logits in float16."""
    if not config.get("average_probabilities"):
        return {}
    return {"activation": "sigmoid" if labels.is_region_based else "softmax", "accumulate_dtype": "float32"}


def _with_checkpoint_configuration(folder: ModelFolder, checkpoint: dict) -> ModelFolder:
    name = (checkpoint.get("init_args") or {}).get("configuration")
    if not name or name == folder.configuration_name or name not in folder.plans.get("configurations", {}):
        return folder
    resolve_configuration(folder.plans, name)
    return dataclasses.replace(folder, configuration_name=name)


def _load_weights(net, weights: dict, model_path: Path) -> None:
    # Where the stored weights already sit on the network's device, the network takes them over
    # instead of copying them: one copy of the parameters in memory, not two.
    device = next(net.parameters()).device
    assign = all(getattr(w, "device", device) == device for w in weights.values())
    try:
        net.load_state_dict(weights, strict=True, assign=assign)
    except RuntimeError as exc:
        first_line = str(exc).splitlines()[0]
        raise MedSegError(f"The checkpoint of model {model_path} does not match the network its plans describe "
                          f"({first_line}). The model folder may mix files from different trainings.") from exc


def _postprocessing_steps(folder: ModelFolder, folds: list[str], postprocess) -> list | None:
    if postprocess is None:  # the model's own default: v1 applies its postprocessing.json, v2 nothing
        default = folder.default_postprocessing_file()
        return load_postprocessing(default) if default is not None else None
    if not postprocess:
        return None
    path = Path(postprocess) if isinstance(postprocess, (str, os.PathLike)) else \
        find_postprocessing_file(folder.path, folds)
    if path is None or not path.is_file():
        raise MedSegError(f"Postprocessing was requested but model {folder.path} has no postprocessing.json "
                          "(nnU-Net writes it to crossval_results_folds_*/ after cross-validation).")
    return load_postprocessing(path)
