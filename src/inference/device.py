"""Choosing the compute device: cpu, cuda, mps or auto."""
from __future__ import annotations

from ..errors import MedSegError

DEVICES = ("auto", "cpu", "cuda", "mps")


def select_device(name: str = "auto"):
    import torch
    name = (name or "auto").lower()
    if name not in DEVICES and not name.startswith("cuda:"):
        raise MedSegError(f"Unknown device {name!r}; use one of {', '.join(DEVICES)}.")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MedSegError("Device 'cuda' was requested but this PyTorch has no usable CUDA GPU "
                          f"(torch {torch.__version__}). Use device cpu, or install a CUDA build of PyTorch.")
    if name == "mps" and not has_mps:
        raise MedSegError("Device 'mps' was requested but Apple's Metal backend is not available here. Use device cpu.")
    return torch.device(name)
