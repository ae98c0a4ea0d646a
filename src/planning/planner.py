"""Experiment planning: from the dataset fingerprint to ``nnUNetPlans.json`` (nnU-Net's schema and rules).

Decisions, in order: target spacing (median; 10th percentile on a coarse, short axis), transpose
(coarsest axis first), then per configuration (2d, 3d_fullres, maybe 3d_lowres + cascade) an
initial patch of 256^3 (2048^2) voxels shaped by the spacing and clipped to the median image,
the U-Net topology for it, shrinking the patch until the feature-map estimate fits the GPU memory
target, and a batch size from the remaining headroom, capped at 5 % of the dataset's voxels.
Every step appends a plain-language note to ``notes`` for ``summary.py``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..datasets.dataset_json import channel_names
from .presets import PRESETS, PlannerPreset
from .topology import compute_topology
from .vram import estimate_feature_map_size

ANISOTROPY_THRESHOLD = 3
MIN_FEATURE_MAP_EDGE = 4
BASE_FEATURES = 32
MAX_FEATURES = {2: 512, 3: 320}
MIN_BATCH_SIZE = 2
REFERENCE_BATCH = {2: 12, 3: 2}
LOWRES_THRESHOLD = 0.25       # plan 3d_lowres when the fullres patch covers less than this of the median image
LOWRES_SPACING_STEP = 1.03

_NORMALIZATION = {"ct": "CTNormalization", "nonorm": "NoNormalization", "zscore": "ZScoreNormalization",
                  "rescale_to_0_1": "RescaleTo01Normalization", "rgb_to_0_1": "RGBTo01Normalization"}
# schemes that keep voxels outside the non-zero mask at 0 when normalizing inside it
_MASKABLE = {"ZScoreNormalization"}


@dataclass
class PlanningNotes:
    """Why each decision was made, for the readable summary."""

    general: list[str] = field(default_factory=list)
    per_configuration: dict[str, list[str]] = field(default_factory=dict)

    def add(self, configuration: str | None, text: str) -> None:
        if configuration is None:
            self.general.append(text)
        else:
            self.per_configuration.setdefault(configuration, []).append(text)


def _fmt(values) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"


def target_spacing(fingerprint: dict, notes: PlanningNotes | None = None) -> np.ndarray:
    spacings = np.vstack(fingerprint["spacings"])
    shapes = np.vstack(fingerprint["shapes_after_crop"])
    target = np.percentile(spacings, 50, 0)
    median_shape = np.percentile(shapes, 50, 0)
    coarse = int(np.argmax(target))
    others = [a for a in range(len(target)) if a != coarse]
    aniso_spacing = target[coarse] > ANISOTROPY_THRESHOLD * max(target[a] for a in others)
    aniso_voxels = median_shape[coarse] * ANISOTROPY_THRESHOLD < min(median_shape[a] for a in others)
    if notes is not None:
        notes.add(None, f"Median spacing (z, y, x) is {_fmt(target)} mm over {len(spacings)} cases.")
    if aniso_spacing and aniso_voxels:
        # thick slices and few of them: the median would blur thin-slice cases badly, take the 10th percentile
        chosen = np.percentile(spacings[:, coarse], 10)
        floor = max(target[a] for a in others)
        if chosen < floor:
            chosen = max(floor, chosen) + 1e-5
        target[coarse] = chosen
        if notes is not None:
            notes.add(None, f"Axis {coarse} is anisotropic (spacing > {ANISOTROPY_THRESHOLD}x the others and fewer "
                            f"than 1/{ANISOTROPY_THRESHOLD} of their voxels), so its target spacing is the 10th "
                            f"percentile {chosen:.4g} mm instead of the median, to avoid interpolation artefacts.")
    elif notes is not None:
        notes.add(None, "Target spacing = median spacing (no axis is both much coarser and much shorter).")
    return target


def transpose_axes(spacing: np.ndarray) -> tuple[list[int], list[int]]:
    """Put the coarsest axis first (2d slices are then cut across it)."""
    coarse = int(np.argmax(spacing))
    forward = [coarse] + [a for a in range(3) if a != coarse]
    backward = [forward.index(a) for a in range(3)]
    return forward, backward


def normalization(dataset_json: dict, fingerprint: dict) -> tuple[list[str], list[bool]]:
    channels = channel_names(dataset_json)
    schemes = [_NORMALIZATION.get(str(name).casefold(), "ZScoreNormalization") for name in channels.values()]
    crop_helps = fingerprint["median_relative_size_after_cropping"] < 3 / 4
    return schemes, [crop_helps and s in _MASKABLE for s in schemes]


def _compute_new_shape(shape, spacing, new_spacing) -> np.ndarray:
    return np.array([int(round(s / n * d)) for s, n, d in zip(spacing, new_spacing, shape)])


class Planner:
    def __init__(self, dataset_json: dict, fingerprint: dict, dataset_name: str,
                 preset: str | PlannerPreset = "default", gpu_memory_gb: float | None = None,
                 base_features: int | None = None,
                 max_features: int | None = None):
        self.dataset_json = dataset_json
        self.fingerprint = fingerprint
        self.dataset_name = dataset_name
        self.preset = PRESETS[preset] if isinstance(preset, str) else preset
        self.gpu_gb = gpu_memory_gb if gpu_memory_gb is not None else self.preset.gpu_gb
        self.notes = PlanningNotes()
        self._cache: dict = {}
        self.num_inputs = len(channel_names(dataset_json))
        self.num_outputs = len(dataset_json["labels"])
        # Fewer features than nnU-Net's 32..320 give a small, CPU-trainable network (e.g. the demo model).
        self.base_features = base_features or BASE_FEATURES
        self.max_features = {dim: max_features or default for dim, default in MAX_FEATURES.items()}
        if base_features or max_features:
            self.notes.general.append(f"Features per stage start at {self.base_features} and stop growing at "
                                      f"{self.max_features[3]} (3d) / {self.max_features[2]} (2d), as asked; "
                                      f"nnU-Net's default is {BASE_FEATURES} and {MAX_FEATURES[3]} / "
                                      f"{MAX_FEATURES[2]}.")

    # ---- one configuration -------------------------------------------------------------------------
    def _architecture(self, topo, dim: int) -> dict:
        n = topo.num_stages
        features = [min(self.max_features[dim], self.base_features * 2 ** i) for i in range(n)]
        block_key = "n_blocks_per_stage" if self.preset.residual else "n_conv_per_stage"
        return {
            "network_class_name": self.preset.network_class,
            "arch_kwargs": {
                "n_stages": n,
                "features_per_stage": features,
                "conv_op": f"torch.nn.modules.conv.Conv{dim}d",
                "kernel_sizes": [list(k) for k in topo.kernel_sizes],
                "strides": [list(s) for s in topo.strides],
                block_key: list(self.preset.encoder_blocks[:n]),
                "n_conv_per_stage_decoder": list(self.preset.decoder_convs[:n - 1]),
                "conv_bias": True,
                "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dim}d",
                "norm_op_kwargs": {"eps": 1e-05, "affine": True},
                "dropout_op": None,
                "dropout_op_kwargs": None,
                "nonlin": "torch.nn.LeakyReLU",
                "nonlin_kwargs": {"inplace": True},
            },
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
        }

    def _estimate(self, topo, arch: dict) -> float:
        key = (tuple(topo.patch_size), str(topo.strides))
        if key not in self._cache:
            kw = arch["arch_kwargs"]
            blocks = kw.get("n_blocks_per_stage", kw.get("n_conv_per_stage"))
            self._cache[key] = estimate_feature_map_size(topo.patch_size, kw["features_per_stage"], topo.strides,
                                                         blocks, kw["n_conv_per_stage_decoder"], self.num_outputs,
                                                         self.preset.residual)
        return self._cache[key]

    def plan_configuration(self, name: str, spacing: Sequence[float] | np.ndarray,
                           median_shape: Sequence[float] | np.ndarray, data_identifier: str,
                           dataset_voxels: float) -> dict:
        spacing = np.asarray(spacing, dtype=float)
        dim = len(spacing)
        inverse = 1 / spacing
        budget = 256 ** 3 if dim == 3 else 2048 ** 2
        shaped = [round(v) for v in inverse * (budget / np.prod(inverse)) ** (1 / dim)]
        initial = np.array([min(i, m) for i, m in zip(shaped, median_shape[:dim])])
        topo = compute_topology(spacing, initial, MIN_FEATURE_MAP_EDGE)
        arch = self._architecture(topo, dim)
        estimate = self._estimate(topo, arch)
        reference = (self.preset.reference_2d if dim == 2 else self.preset.reference_3d) * \
            (self.gpu_gb / self.preset.reference_gb)
        ref_bs = REFERENCE_BATCH[dim]
        first_patch = topo.patch_size
        shrink_steps = 0
        while self._too_big(estimate, ref_bs, reference):
            # shrink the axis that is largest relative to the median image, one valid step at a time
            axis = int(np.argsort([p / m for p, m in zip(topo.patch_size, median_shape[:dim])])[-1])
            patch = list(topo.patch_size)
            trial = list(patch)
            trial[axis] -= topo.divisor[axis]
            step = compute_topology(spacing, trial, MIN_FEATURE_MAP_EDGE).divisor
            patch[axis] -= step[axis]
            topo = compute_topology(spacing, patch, MIN_FEATURE_MAP_EDGE)
            arch = self._architecture(topo, dim)
            estimate = self._estimate(topo, arch)
            shrink_steps += 1
        batch = round((reference / estimate) * ref_bs)
        patch_voxels = np.prod(topo.patch_size, dtype=np.float64)
        cap = round(dataset_voxels * self.preset.max_dataset_covered / patch_voxels)
        batch_size = max(min(batch, cap), MIN_BATCH_SIZE)
        self._note_configuration(name, spacing, median_shape, initial, first_patch, topo, shrink_steps, estimate,
                                 reference, batch, cap, batch_size)
        schemes, use_mask = normalization(self.dataset_json, self.fingerprint)
        data_kwargs = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
        seg_kwargs = {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None}
        prob_kwargs = {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None}
        return {
            "data_identifier": data_identifier,
            "preprocessor_name": "DefaultPreprocessor",
            "batch_size": int(batch_size),
            "patch_size": [int(p) for p in topo.patch_size],
            "median_image_size_in_voxels": [_plain(v) for v in median_shape],
            "spacing": [float(s) for s in spacing],
            "normalization_schemes": schemes,
            "use_mask_for_norm": use_mask,
            "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": data_kwargs,
            "resampling_fn_seg_kwargs": seg_kwargs,
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": prob_kwargs,
            "architecture": arch,
        }

    def _too_big(self, estimate: float, ref_bs: int, reference: float) -> bool:
        if self.preset.per_sample_check:
            return estimate / ref_bs * 2 > reference  # the reference was measured at ref_bs; we need batch >= 2
        return estimate > reference

    def _note_configuration(self, name, spacing, median_shape, initial, first_patch, topo, shrink_steps, estimate,
                            reference, batch, cap, batch_size) -> None:
        add = lambda text: self.notes.add(name, text)  # noqa: E731
        dim = len(spacing)
        median_image = tuple(int(round(float(m))) for m in median_shape[:dim])
        add(f"Spacing {_fmt(spacing)} mm; median image after resampling {median_image} voxels.")
        add(f"Initial patch {tuple(int(i) for i in initial)}: {'256^3' if dim == 3 else '2048^2'} voxels shaped like "
            f"the spacing (1/spacing), clipped to the median image; padded to {tuple(first_patch)} so every "
            "downsampling divides it.")
        if shrink_steps:
            add(f"The estimated GPU memory did not fit {self.gpu_gb:g} GB, so the patch was shrunk {shrink_steps} "
                f"time(s) (always the axis largest relative to the median image) to {tuple(topo.patch_size)}.")
        else:
            add(f"The patch fits the {self.gpu_gb:g} GB memory target unchanged.")
        strides = topo.strides[1:]
        add(f"{topo.num_stages} stages (U-Net depth): each axis is halved while its feature map stays >= "
            f"{MIN_FEATURE_MAP_EDGE} voxels and its spacing is within 2x of the finest; downsamplings per axis "
            f"{topo.pools_per_axis}, strides {strides}.")
        add(f"Kernels {topo.kernel_sizes}: an axis gets 3-wide kernels once its spacing is within 2x of the finest.")
        add(f"Batch size {batch_size}: memory headroom allows {batch} (estimate {estimate / 1e6:.0f}M feature-map "
            f"values vs reference {reference / 1e6:.0f}M), the {self.preset.max_dataset_covered:.0%} dataset cap "
            f"allows {cap}, and the minimum is {MIN_BATCH_SIZE}.")

    # ---- the whole plan ----------------------------------------------------------------------------
    def plan(self) -> dict:
        fp, p = self.fingerprint, self.preset
        spacing = target_spacing(fp, self.notes)
        forward, backward = transpose_axes(spacing)
        if forward != [0, 1, 2]:
            self.notes.add(None, f"Transpose {forward}: the coarsest axis goes first, so 2d slices are cut across it.")
        spacing_t = spacing[forward]
        new_shapes = [_compute_new_shape(shape, sp, spacing)
                      for sp, shape in zip(fp["spacings"], fp["shapes_after_crop"])]
        median_shape_t = np.median(new_shapes, 0)[forward]
        num_training = self.dataset_json["numTraining"]
        dataset_voxels = float(np.prod(median_shape_t, dtype=np.float64) * num_training)
        configurations: dict = {}
        fullres = lowres = None
        if median_shape_t[0] != 1:
            fullres = self.plan_configuration("3d_fullres", spacing_t, median_shape_t, p.data_identifier("3d_fullres"),
                                              dataset_voxels)
            lowres = self._plan_lowres(fullres, median_shape_t, num_training)
            fullres["batch_dice"] = lowres is not None
            if lowres is not None:
                lowres["batch_dice"] = False
        plan_2d = self.plan_configuration("2d", spacing_t[1:], median_shape_t[1:], p.data_identifier("2d"),
                                          dataset_voxels)
        plan_2d["batch_dice"] = True
        configurations["2d"] = plan_2d
        if lowres is not None:
            lowres["next_stage"] = "3d_cascade_fullres"
            configurations["3d_lowres"] = lowres
        if fullres is not None:
            configurations["3d_fullres"] = fullres
            if lowres is not None:
                configurations["3d_cascade_fullres"] = {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}
        median_spacing = np.median(fp["spacings"], 0)[forward]
        median_shape = np.median(fp["shapes_after_crop"], 0)[forward]
        return {
            "dataset_name": self.dataset_name,
            "plans_name": p.plans_name,
            "original_median_spacing_after_transp": [float(s) for s in median_spacing],
            "original_median_shape_after_transp": [int(round(float(s))) for s in median_shape],
            "image_reader_writer": self._reader_writer(),
            "transpose_forward": [int(a) for a in forward],
            "transpose_backward": [int(a) for a in backward],
            "configurations": configurations,
            "experiment_planner_used": p.planner_name,
            "label_manager": "LabelManager",
            "foreground_intensity_properties_per_channel": fp["foreground_intensity_properties_per_channel"],
        }

    def _plan_lowres(self, fullres: dict, median_shape_t: np.ndarray, num_training: int) -> dict | None:
        median_voxels = np.prod(median_shape_t, dtype=np.float64)
        patch_voxels = np.prod(fullres["patch_size"], dtype=np.float64)
        fullres_spacing = np.array(fullres["spacing"])
        spacing = fullres_spacing.copy()
        lowres = None
        while patch_voxels / median_voxels < LOWRES_THRESHOLD:
            # coarsen the fine axes first until all are within 2x of the coarsest, then all together
            coarsest = max(spacing)
            if np.any(coarsest / spacing > 2):
                spacing[coarsest / spacing > 2] *= LOWRES_SPACING_STEP
            else:
                spacing *= LOWRES_SPACING_STEP
            median_voxels = np.prod(fullres_spacing / spacing * median_shape_t, dtype=np.float64)
            shape = tuple(round(v) for v in fullres_spacing / spacing * median_shape_t)
            self.notes.per_configuration.pop("3d_lowres", None)  # keep only the last attempt's notes
            lowres = self.plan_configuration("3d_lowres", spacing.copy(), shape,
                                             self.preset.data_identifier("3d_lowres"),
                                             float(median_voxels * num_training))
            patch_voxels = np.prod(lowres["patch_size"], dtype=np.float64)  # exact: far below 2**53
        if lowres is None:
            self.notes.add("3d_fullres",
                           f"No 3d_lowres: the patch covers >= {LOWRES_THRESHOLD:.0%} of the median image.")
            return None
        if np.prod(median_shape_t, dtype=np.float64) / median_voxels < 2:
            self.notes.per_configuration.pop("3d_lowres", None)
            self.notes.add("3d_fullres", "3d_lowres was tried but dropped: its images would be less than 2x smaller.")
            return None
        self.notes.add("3d_lowres", f"Planned because the 3d_fullres patch covers < {LOWRES_THRESHOLD:.0%} of the "
                                    "median image; the spacing was coarsened in 3 % steps until the patch covers "
                                    ">= 25 %. "
                                    "Its predictions feed 3d_cascade_fullres.")
        return lowres

    def _reader_writer(self) -> str:
        return reader_writer(self.dataset_json)


def reader_writer(dataset_json: dict) -> str:
    """nnU-Net's image reader/writer for a dataset: its dataset.json's override, else SimpleITKIO."""
    override = dataset_json.get("overwrite_image_reader_writer")
    if override and override != "None":
        return override
    return "SimpleITKIO"


def _plain(value):
    """Keep ints as ints and floats as floats, as nnU-Net's JSON has them."""
    return int(value) if isinstance(value, (int, np.integer)) else float(value)


def plan_experiment(dataset_json: dict, fingerprint: dict, dataset_name: str, preset: str = "default",
                    gpu_memory_gb: float | None = None, base_features: int | None = None,
                    max_features: int | None = None) -> tuple[dict, PlanningNotes]:
    """The plans (nnU-Net's ``nnUNetPlans.json`` schema) and the notes explaining them."""
    planner = Planner(dataset_json, fingerprint, dataset_name, preset, gpu_memory_gb, base_features, max_features)
    return planner.plan(), planner.notes
