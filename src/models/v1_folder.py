"""nnU-Net v1 model folders, read into the engine's one model description (a :class:`ModelFolder`).

A v1 model folder (``nnUNet/<configuration>/<TaskXXX_Name>/<Trainer>__<Plans>/``) holds ``plans.pkl``,
``postprocessing.json`` and ``fold_k/model_final_checkpoint.model`` (+ ``.model.pkl``). The plans are
read with the data-only unpickler and turned into v2-style plans whose configuration marks where v1
behaves differently, so the one pipeline honours it:

- ``"normalize_after_resampling": True``: v1 resamples first, then normalizes, with the non-zero mask
  resampled like a segmentation (preprocessing/pipeline.py);
- ``"average_probabilities": True``: v1 applies softmax/sigmoid to every network output and averages
  probabilities over mirrorings, tiles (float32) and folds, then resamples probabilities for export
  (v2 averages logits);
- the network is ``Generic_UNet`` (network/generic_unet.py) with the trainer's norm layer;
- labels: the BraTS regions with ``regions_class_order`` for the region trainers (models/v1_trainers.py);
- ``3d_cascade_fullres``: ``"previous_stage": "3d_lowres"`` with ``"previous_stage_uncropped": True``
  (v1 feeds the lowres labels resized from the uncropped image; inference/cascade.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import MedSegError
from ..fileio import read_json
from .description import ModelFolder
from .safe_pickle import load_data_pickle
from .v1_trainers import BRATS_REGIONS, BRATS_REGIONS_CLASS_ORDER, TrainerBehaviour, trainer_behaviour

CONFIGURATIONS = ("2d", "3d_lowres", "3d_fullres", "3d_cascade_fullres")
CHECKPOINT_NAMES = {"checkpoint_final.pth": "model_final_checkpoint.model", "checkpoint_best.pth": "model_best.model"}
_FOLD_DIR = re.compile(r"^(?:fold_(\d+)|(all))$")  # v1 names the fold trained on every case "all"
# v1's normalization scheme names -> the engine's (v1 z-scores anything it does not name)
_SCHEMES = {"CT": "CTNormalization", "CT2": "CT2Normalization", "noNorm": "NoNormalization"}


def is_v1_model_dir(path: Path) -> bool:
    return (path / "plans.pkl").is_file() and not (path / "plans.json").is_file()


def holds_v1_model(path: Path) -> bool:
    """Whether ``path`` is, or contains, a v1 model folder (a plans.pkl beside fold_* folders)."""
    return is_v1_model_dir(path) or any(_has_folds(p.parent) for p in path.rglob("plans.pkl"))


def _has_folds(path: Path) -> bool:
    return any(p.is_dir() and _FOLD_DIR.match(p.name) for p in path.iterdir())


@dataclass
class V1ModelFolder(ModelFolder):
    """A v1 model folder as the engine's model description; checkpoints are v1 ``.model`` files."""

    trainer_name: str = ""

    def checkpoint_path(self, fold: str, checkpoint_name: str = "checkpoint_final.pth") -> Path:
        name = CHECKPOINT_NAMES.get(checkpoint_name, checkpoint_name)
        name = name if name.endswith(".model") else name + ".model"
        path = self.path / fold_dir_name(fold) / name
        if not path.is_file():
            present = sorted(p.name for p in (self.path / fold_dir_name(fold)).glob("*.model"))
            raise MedSegError(f"Fold {fold} of nnU-Net v1 model {self.path} has no {name} "
                              f"(found: {', '.join(present) or 'no checkpoints'}). Re-download or re-install it.")
        return path

    def default_postprocessing_file(self) -> Path | None:
        """nnunet 1.7.1's predictor applies ``<model folder>/postprocessing.json`` whenever it exists (its
        ``nnUNet_predict`` has no flag against it; only the Python API's ``disable_postprocessing``)."""
        path = self.path / "postprocessing.json"
        return path if path.is_file() else None

    @property
    def behaviour(self) -> TrainerBehaviour:
        return trainer_behaviour(self.trainer_name)


def fold_dir_name(fold: str) -> str:
    return "all" if str(fold) == "all" else f"fold_{fold}"


def _fold_of(name: str) -> str | None:
    match = _FOLD_DIR.match(name)
    return (match.group(1) or match.group(2)) if match else None


def find_v1_model_dir(path: Path, configuration: str | None = None) -> Path:
    """The v1 model folder at or below ``path`` (one of several when ``configuration`` picks it)."""
    if is_v1_model_dir(path):
        return path
    candidates = sorted(p.parent for p in path.rglob("plans.pkl") if _has_folds(p.parent))
    # as nnUNet_predict, 3d_fullres unless another configuration is asked for
    wanted = configuration or "3d_fullres"
    candidates = [c for c in candidates if configuration_of(c) == wanted] or candidates
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise MedSegError(f"{path} holds no nnU-Net v1 model folder (plans.pkl beside fold_* folders).")
    listing = ", ".join(str(c.relative_to(path)) for c in candidates)
    raise MedSegError(f"{path} holds several nnU-Net v1 models ({listing}); choose one with its folder or a "
                      "configuration.")


def open_v1_folder(path: Path, configuration: str | None = None) -> V1ModelFolder:
    """Read a v1 model folder into the engine's model description; every problem is one MedSegError."""
    folder = find_v1_model_dir(Path(path), configuration)
    if not (folder / "plans.pkl").is_file():
        raise MedSegError(f"nnU-Net v1 model {folder} has no plans.pkl; the model folder is incomplete. "
                          "Re-download or re-install it.")
    plans_v1 = load_data_pickle(folder / "plans.pkl")
    folds = _folds(folder)
    if not folds:
        raise MedSegError(f"nnU-Net v1 model {folder} has no fold_* folder with a model_final_checkpoint.model.")
    info = _fold_info(folder / fold_dir_name(folds[0]) / "model_final_checkpoint.model.pkl")
    trainer = str(info.get("name") or folder.name.split("__")[0])
    behaviour = trainer_behaviour(trainer)
    name = configuration or configuration_of(folder) or _guess_configuration(plans_v1)
    stage = _stage(plans_v1, name, info)
    plans, dataset_json = describe(plans_v1, stage, name, behaviour, _label_names(folder))
    if name == "3d_cascade_fullres":  # v1's rule for the lowres labels: inference/cascade.py
        plans["configurations"][name].update(previous_stage="3d_lowres", previous_stage_uncropped=True)
    # names as v2 plans have them (``nnUNetPlansv2.1`` of ``Task082_BraTS2020``): carried plans are named after them
    plans.update(plans_name=_plans_identifier(folder), dataset_name=folder.parent.name)
    plans["configurations"][name]["data_identifier"] = f"{plans['plans_name']}_{name}"
    return V1ModelFolder(folder, dataset_json, plans, name, folds, trainer_name=trainer)


def _plans_identifier(folder: Path) -> str:
    """The plans part of ``<Trainer>__<Plans>`` (v1's default ``nnUNetPlansv2.1`` when the name lacks one)."""
    parts = folder.name.split("__")
    return parts[1] if len(parts) == 2 and re.fullmatch(r"[A-Za-z0-9_.-]+", parts[1]) else "nnUNetPlansv2.1"


def _folds(folder: Path) -> list[str]:
    found = [f for p in folder.iterdir() if p.is_dir() and (f := _fold_of(p.name)) and any(p.glob("*.model"))]
    empty = [p.name for p in folder.iterdir() if p.is_dir() and _FOLD_DIR.match(p.name) and not any(p.glob("*.model"))]
    if empty:
        raise MedSegError(f"nnU-Net v1 model {folder}: {', '.join(sorted(empty))} has no .model checkpoint; "
                          "the model is incomplete. Re-download or re-install it.")
    return sorted(found, key=lambda f: (f == "all", int(f) if f != "all" else 0))


def _fold_info(path: Path) -> dict:
    """The fold's ``.model.pkl`` (trainer class name, constructor arguments); empty when absent."""
    if not path.is_file():
        return {}
    info = load_data_pickle(path)
    return info if isinstance(info, dict) else {}


def configuration_of(folder: Path) -> str | None:
    """The configuration a v1 model folder's place names (``<configuration>/<Task>/<Trainer>__<Plans>``)."""
    name = folder.parent.parent.name if folder.parent != folder else ""
    return name if name in CONFIGURATIONS else None


def _guess_configuration(plans: dict) -> str:
    stages = plans.get("plans_per_stage") or {}
    first = stages[min(stages)] if stages else {}
    return "2d" if len(first.get("patch_size", [0, 0, 0])) == 2 else "3d_fullres"


def _stage(plans: dict, configuration: str, info: dict) -> int:
    """The plans stage a configuration trains on (v1: 2d and 3d_lowres stage 0, 3d_fullres the last)."""
    stages = sorted(plans.get("plans_per_stage") or {})
    if not stages:
        raise MedSegError("The nnU-Net v1 plans have no 'plans_per_stage'; plans.pkl is damaged or not v1's.")
    init = info.get("init")
    if isinstance(init, (list, tuple)) and len(init) > 5 and init[5] is not None and init[5] in stages:
        return int(init[5])
    return stages[0] if configuration in ("2d", "3d_lowres") else stages[-1]


def _label_names(folder: Path) -> dict[int, str]:
    """Label names from a v1 dataset.json beside the plans (installs from the manifest write one)."""
    path = folder / "dataset.json"
    if not path.is_file():
        return {}
    labels = read_json(path).get("labels", {})
    return {int(k): str(v) for k, v in labels.items() if str(k).lstrip("-").isdigit() and int(k) != 0}


def describe(plans_v1: dict, stage: int, configuration: str, behaviour: TrainerBehaviour,
             names: dict[int, str]) -> tuple[dict, dict]:
    """(v2-style plans, dataset.json) for one stage of v1 plans, run as ``behaviour``'s trainer does."""
    try:
        stage_plans = plans_v1["plans_per_stage"][stage]
        channels = int(plans_v1["num_modalities"])
        config = {
            "patch_size": [int(p) for p in stage_plans["patch_size"]],
            "batch_size": int(stage_plans.get("batch_size", 2)),  # for training with carried plans (transfer)
            # v1's 2d plans keep all three spacings; the first (each case's own, as slices) is not a target
            "spacing": [float(s) for s in stage_plans["current_spacing"]][-len(stage_plans["patch_size"]):],
            "normalization_schemes": [_SCHEMES.get(str(plans_v1["normalization_schemes"][c]), "ZScoreNormalization")
                                      for c in range(channels)],
            "use_mask_for_norm": [bool(plans_v1["use_mask_for_norm"][c]) for c in range(channels)],
            "resampling_fn_data_kwargs": {"order": 3, "order_z": 0, "force_separate_z": None},
            "resampling_fn_probabilities_kwargs": _export_kwargs(plans_v1),
            "architecture": _architecture(plans_v1, stage_plans, behaviour),
            "normalize_after_resampling": True,
            "average_probabilities": True,
        }
        plans = {"plans_name": "nnU-Net v1", "configurations": {configuration: config},
                 "transpose_forward": [int(a) for a in plans_v1.get("transpose_forward", [0, 1, 2])],
                 "transpose_backward": [int(a) for a in plans_v1.get("transpose_backward", [0, 1, 2])],
                 "foreground_intensity_properties_per_channel": _intensity_properties(plans_v1)}
        dataset_json = _dataset_json(plans_v1, behaviour, names)
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise MedSegError(f"The nnU-Net v1 plans lack or garble an entry MedSeg needs ({exc!r}); plans.pkl is "
                          "damaged or not v1's.") from None
    return plans, dataset_json


def _architecture(plans_v1: dict, stage_plans: dict, behaviour: TrainerBehaviour) -> dict:
    dim = len(stage_plans["patch_size"])
    norm = {"instance": "InstanceNorm", "batch": "BatchNorm"}[behaviour.norm] + f"{dim}d"
    return {"network_class_name": "Generic_UNet", "arch_kwargs": {
        "conv_op": f"torch.nn.Conv{dim}d", "norm_op": f"torch.nn.{norm}",
        "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"negative_slope": 1e-2, "inplace": True},
        "base_num_features": int(plans_v1["base_num_features"]),
        "conv_kernel_sizes": [[int(k) for k in ks] for ks in stage_plans["conv_kernel_sizes"]],
        "pool_op_kernel_sizes": [[int(p) for p in ps] for ps in stage_plans["pool_op_kernel_sizes"]],
        "conv_per_stage": behaviour.conv_per_stage or int(plans_v1.get("conv_per_stage", 2)),
        # the same pooling as v2 plans state it (stage 0 unstrided): what training's deep supervision reads
        "strides": [[1] * dim] + [[int(p) for p in ps] for ps in stage_plans["pool_op_kernel_sizes"]]}}


def _export_kwargs(plans_v1: dict) -> dict:
    params = plans_v1.get("segmentation_export_params") or {}
    return {"order": int(params.get("interpolation_order", 1)), "order_z": int(params.get("interpolation_order_z", 0)),
            "force_separate_z": params.get("force_separate_z")}


def _intensity_properties(plans_v1: dict) -> dict:
    props = (plans_v1.get("dataset_properties") or {}).get("intensityproperties") or {}
    return {str(c): {"mean": float(p["mean"]), "std": float(p["sd"]), "percentile_00_5": float(p["percentile_00_5"]),
                     "percentile_99_5": float(p["percentile_99_5"])} for c, p in props.items()}


def _dataset_json(plans_v1: dict, behaviour: TrainerBehaviour, names: dict[int, str]) -> dict:
    modalities = plans_v1.get("modalities") or (plans_v1.get("dataset_properties") or {}).get("modalities") or {}
    channels = {str(c): str(modalities.get(c, modalities.get(str(c), f"channel {c}")))
                for c in range(int(plans_v1["num_modalities"]))}
    if behaviour.brats_regions:
        labels: dict = {"background": 0, **{n: list(v) for n, v in BRATS_REGIONS.items()}}
        return {"channel_names": channels, "labels": labels, "regions_class_order": list(BRATS_REGIONS_CLASS_ORDER)}
    classes = [int(c) for c in plans_v1["all_classes"]]
    labels = {"background": 0, **{names.get(c, f"label {c}"): c for c in classes}}
    return {"channel_names": channels, "labels": labels}
