"""Checkpoints in nnU-Net's format, written atomically (a crash mid-write leaves the old file)."""
from __future__ import annotations

import os
from pathlib import Path

from ..fileio import atomic_path

LATEST = "checkpoint_latest.pth"
BEST = "checkpoint_best.pth"
FINAL = "checkpoint_final.pth"


def plain_state_dict(network) -> dict:
    """The weights without a DDP / torch.compile wrapper prefix, as nnU-Net saves them."""
    module = getattr(network, "module", network)
    module = getattr(module, "_orig_mod", module)
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def save_checkpoint(path: str | os.PathLike, content: dict) -> Path:
    """``torch.save`` through a temporary file + rename; only tensors, numbers, strings, lists, dicts."""
    import torch
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(content, tmp)
    return path
