"""nnU-Net v1 ``fold_k/*.model`` checkpoints, given the form of a v2 checkpoint.

A v1 checkpoint is a ``torch.save`` dict (``state_dict``, ``optimizer_state_dict``, ``epoch``,
``plot_stuff`` with numpy scalars, maybe ``amp_grad_scaler``); checkpoint.py loads it with the same
restricted unpickler as v2 files. Here its weights are checked against the network the model folder's
plans describe (key by key, shape by shape, on torch's "meta" device: no memory, no arithmetic), so a
checkpoint from another training is refused before any work starts, and the trainer's mirroring rule
is attached as v2 checkpoints carry it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import MedSegError
from ..network.build import build_network
from .v1_folder import V1ModelFolder, open_v1_folder


def as_v2_checkpoint(path: Path, data: Any) -> dict[str, Any]:
    """The v1 checkpoint ``data`` (loaded from ``path``) as a v2-style checkpoint dict."""
    if not isinstance(data, dict) or not isinstance(data.get("state_dict"), dict):
        raise MedSegError(f"{path} is not an nnU-Net v1 checkpoint (no 'state_dict' entry).")
    folder = open_v1_folder(path.parent.parent)  # fold_k/../ is the model folder whose plans it must fit
    weights = data["state_dict"]
    check_weights(folder, weights, path)
    spatial_axes = tuple(range(len(folder.configuration["patch_size"])))
    return {"network_weights": weights, "trainer_name": folder.trainer_name, "current_epoch": data.get("epoch"),
            "inference_allowed_mirroring_axes": spatial_axes if folder.behaviour.mirroring else ()}


def expected_shapes(folder: V1ModelFolder) -> dict[str, tuple[int, ...]]:
    """Parameter and buffer shapes of the network ``folder``'s plans describe, by v1 key."""
    import torch  # heavy, optional for the rest of this module's callers
    with torch.device("meta"):
        net = build_network(folder.configuration["architecture"], folder.num_input_channels,
                            folder.labels.num_outputs)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def check_weights(folder: V1ModelFolder, weights: dict, path: Path) -> None:
    """Refuse weights whose keys or shapes differ from the network of ``folder``'s plans."""
    expected = expected_shapes(folder)
    got = {k: tuple(getattr(v, "shape", ())) for k, v in weights.items()}
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if not (missing or extra or wrong):
        return
    problems = []
    if missing:
        problems.append(f"{len(missing)} weight(s) missing (e.g. {missing[0]})")
    if extra:
        problems.append(f"{len(extra)} unexpected weight(s) (e.g. {extra[0]})")
    if wrong:
        problems.append(f"{len(wrong)} of another shape (e.g. {wrong[0]}: {got[wrong[0]]} in the file, "
                        f"{expected[wrong[0]]} in the plans)")
    raise MedSegError(f"Checkpoint {path} does not fit the network that {folder.path / 'plans.pkl'} and trainer "
                      f"{folder.trainer_name} describe: {'; '.join(problems)}. The model folder mixes files from "
                      "different trainings; re-download or re-install it.")
