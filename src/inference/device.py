"""Choosing the compute device: cpu, cuda, cuda:N, mps or auto."""
from __future__ import annotations

import torch

from ..errors import MedSegError
from .options import parse_device


def select_device(name: str | torch.device = "auto") -> torch.device:
    """The torch device for a name (see ``options.parse_device``); refuses one this machine lacks."""
    if isinstance(name, torch.device):
        return name
    name = parse_device(name)
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MedSegError(f"Device {name!r} was requested but this PyTorch has no usable CUDA GPU "
                              f"(torch {torch.__version__}). Use device cpu, or install a CUDA build of PyTorch.")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise MedSegError(f"Device {name!r} was requested but this machine has {torch.cuda.device_count()} "
                              f"CUDA GPU(s) (cuda:0 to cuda:{torch.cuda.device_count() - 1}).")
    if name == "mps" and not has_mps:
        raise MedSegError("Device 'mps' was requested but Apple's Metal backend is not available here. Use device cpu.")
    return torch.device(name)
