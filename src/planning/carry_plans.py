"""Plans carried over from a pretrained model, for transfer learning (``medseg plan --plans-from``).

As ``nnUNetv2_move_plans_between_datasets``: the source's plans become the target's, so the
target is preprocessed for, and trained with, the very network the pretrained weights fit
(topology, patch, batch, target spacing, transpose). The plans are renamed (``plans_name``,
``data_identifier``, ``dataset_name``) and take the target's image reader.

One difference, by default: the intensity normalization is the target's own (schemes from its
channel names, CT statistics from its fingerprint), because the source's foreground statistics
describe another dataset. ``keep_source_normalization`` carries the source's over unchanged,
which is what nnU-Net itself does.
"""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path

from ..errors import MedSegError
from ..fileio import read_json
from ..models.model_folder import open_model_folder
from ..models.registry import resolve_model
from .planner import PlanningNotes, normalization, reader_writer

V1_INFERENCE_FLAGS = ("normalize_after_resampling", "average_probabilities")


def source_plans(source: str | os.PathLike) -> tuple[dict, str | None, str]:
    """(plans, the model's configuration or None, a description) of a plans file, a model folder
    or an installed model's name."""
    path = Path(source).expanduser()
    if path.is_file() and path.suffix == ".json":
        plans = read_json(path)
        if not isinstance(plans, dict) or "configurations" not in plans:
            raise MedSegError(f"{path} is not an nnU-Net plans file (no 'configurations').")
        return plans, None, str(path)
    if not path.exists():
        path = resolve_model(str(source))
    folder = open_model_folder(path)
    return folder.plans, folder.configuration_name, f"model {folder.path}"


def default_plans_name(plans: dict) -> str:
    """``nnUNetPlans_from_Dataset006_Lung`` (v1: ``nnUNetPlansv2.1_from_Task006_Lung``): never the target's own
    default plans name; a clean identifier (it names files and folders)."""
    name = f"{plans.get('plans_name', 'nnUNetPlans')}_from_{plans.get('dataset_name', 'pretrained')}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def carried_plans(plans: dict, dataset_json: dict, fingerprint: dict, dataset_name: str, plans_name: str,
                  keep_source_normalization: bool = False, source: str = "the source") -> tuple[dict, PlanningNotes]:
    """The target's plans made from the source's ``plans``, with notes for the summary."""
    out = copy.deepcopy(plans)
    old_name = out.get("plans_name", "nnUNetPlans")
    out.update(dataset_name=dataset_name, plans_name=plans_name, image_reader_writer=reader_writer(dataset_json))
    for config in out.get("configurations", {}).values():
        if "data_identifier" in config:
            config["data_identifier"] = _renamed_identifier(config["data_identifier"], old_name, plans_name)
    notes = PlanningNotes()
    notes.add(None, f"Plans carried over from {source} (plans {old_name} of {plans.get('dataset_name')}): the same "
                    "network, patch, batch, target spacing and transpose, so its weights fit (transfer learning).")
    if _drop_v1_inference_flags(out):
        notes.add(None, "From an nnU-Net v1 model: its network (Generic_UNet) is kept; this dataset is preprocessed, "
                        "trained and later predicted the v2 way (normalized before resampling, logits averaged).")
    if keep_source_normalization:
        _check_channel_count(out, dataset_json)
        notes.add(None, "Intensity normalization carried over too (schemes and foreground statistics of the source "
                        "dataset), as nnU-Net does.")
        return out, notes
    schemes, use_mask = normalization(dataset_json, fingerprint)
    for config in out.get("configurations", {}).values():
        if "normalization_schemes" in config:
            config["normalization_schemes"], config["use_mask_for_norm"] = list(schemes), list(use_mask)
    out["foreground_intensity_properties_per_channel"] = fingerprint["foreground_intensity_properties_per_channel"]
    notes.add(None, "Intensity normalization from this dataset's own channels and fingerprint (not the source's).")
    return out, notes


def _drop_v1_inference_flags(plans: dict) -> bool:
    """The v1 model description's flags (models/v1_folder.py) say how v1 ran *its* model; a model trained here
    from the carried plans is trained and run the v2 way. Returns whether any was there."""
    found = False
    for config in plans.get("configurations", {}).values():
        for flag in V1_INFERENCE_FLAGS:
            found = config.pop(flag, None) is not None or found
    return found


def _renamed_identifier(identifier: str, old_name: str, new_name: str) -> str:
    """nnU-Net's renaming: the old plans name prefix is replaced, anything else gets the new one in front."""
    if old_name == new_name:
        return identifier
    if identifier.startswith(old_name):
        return new_name + identifier[len(old_name):]
    return f"{new_name}_{identifier}"


def _check_channel_count(plans: dict, dataset_json: dict) -> None:
    channels = len(dataset_json.get("channel_names", dataset_json.get("modality", {})))
    for name, config in plans.get("configurations", {}).items():
        schemes = config.get("normalization_schemes")
        if schemes is not None and len(schemes) != channels:
            raise MedSegError(f"The source's normalization covers {len(schemes)} channel(s) ({name}), this dataset has "
                              f"{channels}; its normalization cannot be carried over. Leave out "
                              "--keep-source-normalization (this dataset's own is then used).")
