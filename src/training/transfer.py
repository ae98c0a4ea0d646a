"""Transfer learning: start from a trained model's weights.

Every tensor whose name and shape match is copied; the rest (a new output head when the labels
differ, a first convolution when the channels differ) keeps its fresh initialisation. The first
N encoder stages can be frozen.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import MedSegError


def pretrained_weights(source: str | os.PathLike) -> dict:
    """The weights of a model folder (fold 'all' or the first fold), a checkpoint file, or a model name."""
    from ..models.checkpoint import load_checkpoint
    path = Path(source).expanduser()
    if path.is_file() and path.suffix == ".pth":
        return load_checkpoint(path)["network_weights"]
    if not path.exists():
        from ..models.registry import resolve_model
        path = resolve_model(str(source))
    from ..models.model_folder import open_model_folder
    folder = open_model_folder(path)
    fold = "all" if "all" in folder.folds else folder.select_folds(None)[0]
    return load_checkpoint(folder.checkpoint_path(fold))["network_weights"]


def load_pretrained(network, source: str | os.PathLike, freeze_stages: int = 0) -> str:
    """Copy matching weights into ``network``; returns a one-line account of what happened."""
    weights = pretrained_weights(source)
    own = network.state_dict()
    loaded = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(k for k in own if k not in loaded)
    if not loaded:
        raise MedSegError(f"No layer of {source} fits this network (different architecture); "
                          "pretrained weights need the same plans' architecture.")
    own.update(loaded)
    network.load_state_dict(own)
    heads = [k for k in skipped if "seg_layers" in k]
    frozen = freeze_encoder_stages(network, freeze_stages) if freeze_stages else 0
    text = f"Pretrained weights from {source}: {len(loaded)} tensors loaded"
    if heads:
        text += "; new output heads (the labels differ)"
    others = [k for k in skipped if k not in heads]
    if others:
        text += f"; {len(others)} other tensors kept fresh (e.g. {others[0]})"
    if frozen:
        text += f"; first {freeze_stages} encoder stage(s) frozen ({frozen} tensors)"
    return text + "."


def freeze_encoder_stages(network, count: int) -> int:
    """Stop training the first ``count`` encoder stages (and the stem of residual encoders)."""
    stages = len(network.encoder.stages)
    if not 0 <= count <= stages:
        raise MedSegError(f"Cannot freeze {count} stages: the encoder has {stages}.")
    frozen = 0
    modules = list(network.encoder.stages)[:count]
    if count and network.encoder.stem is not None:
        modules.append(network.encoder.stem)
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(False)
            frozen += 1
    return frozen
