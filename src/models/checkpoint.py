"""Load nnU-Net checkpoints without running pickled code.

nnU-Net itself calls ``torch.load(weights_only=False)``, which executes whatever a downloaded
file's pickle asks for. We use torch's restricted unpickler (``weights_only=True``) and allow,
beyond tensors and plain containers, only numpy's scalar/array reconstructors (nnU-Net's
training log holds numpy floats). Anything else is refused, naming what the file asked for.
"""
from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Any

from ..errors import MedSegError
from . import v1_checkpoint

# Globals that rebuild numpy scalars/arrays from bytes; they cannot run code.
_NUMPY_SAFE = {
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
    "numpy.dtype", "numpy.ndarray",
}


def _is_safe_global(name: str) -> bool:
    return name in _NUMPY_SAFE or name.startswith("numpy.dtypes.")


def _resolve_global(name: str, missing_ok: bool = False):
    """The object a pickle names; numpy 1.x and 2.x spell their core module differently."""
    import importlib
    module, _, attr = name.rpartition(".")
    for candidate in (module, module.replace("numpy._core", "numpy.core"), module.replace("numpy.core", "numpy._core")):
        try:
            return getattr(importlib.import_module(candidate), attr)
        except (ImportError, AttributeError):
            continue
    if missing_ok:
        return None
    raise MedSegError(f"Cannot resolve {name} needed by the checkpoint.")


def _numpy_dtype_classes() -> list:
    """numpy's dtype classes (Float64DType, ...): plain types a pickled numpy scalar refers to."""
    import numpy as np
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25
    return [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")] if dtypes else []


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint safely onto the CPU; a file whose pickle would run code is refused.

    nnU-Net v2 ``.pth`` files as they are; nnU-Net v1 ``.model`` files in the same form (v1_checkpoint.py).
    """
    path = Path(path)
    data = load_torch_file(path)
    if path.suffix == ".model":
        return v1_checkpoint.as_v2_checkpoint(path, data)
    if not isinstance(data, dict) or "network_weights" not in data:
        raise MedSegError(f"{path} is not an nnU-Net checkpoint (no 'network_weights' entry).")
    return data


def load_torch_file(path: Path) -> Any:
    """``torch.load`` with torch's restricted unpickler, admitting numpy's data types only."""
    import torch

    if not path.is_file():
        raise MedSegError(f"Checkpoint not found: {path}")
    if zipfile.is_zipfile(path):
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception as exc:
            raise MedSegError(f"{path} is not a readable PyTorch checkpoint ({exc}).") from exc
        refused = [g for g in unsafe if not _is_safe_global(g)]
        if refused:
            raise _refusal(path, refused)
    else:  # PyTorch < 1.6's format (older nnU-Net v1 models): torch's restricted unpickler checks as it reads
        unsafe = sorted(_NUMPY_SAFE)
    # (object, name) pairs: a file written under numpy 2 names numpy._core, which numpy 1.26 maps elsewhere
    allowed = [(obj, g) for g in unsafe if (obj := _resolve_global(g, missing_ok=True)) is not None]
    try:
        with torch.serialization.safe_globals(allowed + _numpy_dtype_classes()):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's unpickler raises all sorts on garbage (IndexError, KeyError, ...)
        asked = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", str(exc))
        if asked:
            raise _refusal(path, [asked.group(1)]) from None
        raise MedSegError(f"Cannot load checkpoint {path}: {str(exc).splitlines()[0]}") from None


def _refusal(path: Path, names: list[str]) -> MedSegError:
    return MedSegError(f"Refusing to load {path}: its pickle asks for {', '.join(sorted(names))}, which could run "
                       "code on this computer. Only load checkpoints from sources you trust; a genuine nnU-Net "
                       "checkpoint needs none of these.")
