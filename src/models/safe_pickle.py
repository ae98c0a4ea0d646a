"""Read nnU-Net v1's ``.pkl`` files (plans, ``model_final_checkpoint.model.pkl``) without running code.

Those pickles hold plain data: dicts, OrderedDicts, lists, tuples, strings, numbers, numpy arrays,
numpy scalars and dtypes. ``pickle.load`` would call any global a file names (``os.system`` ...);
this unpickler resolves only the globals that rebuild those types and refuses every other one,
naming it, before anything is called.
"""
from __future__ import annotations

import importlib
import io
import os
import pickle
from pathlib import Path
from typing import Any

from ..errors import MedSegError

# (module, name) a data pickle may name; numpy 1.x spells its core "numpy.core", numpy 2 "numpy._core".
_ALLOWED = {
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # protocol 2 stores bytes (array data) as text re-encoded: no code involved
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


def _allowed(module: str, name: str) -> bool:
    # numpy >= 1.25 pickles dtypes of scalars by their class (numpy.dtypes.Float64DType)
    return (module, name) in _ALLOWED or (module == "numpy.dtypes" and name.endswith("DType"))


def _resolve(module: str, name: str):
    for candidate in (module, module.replace("numpy._core", "numpy.core"), module.replace("numpy.core", "numpy._core")):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"cannot resolve {module}.{name}")


class DataUnpickler(pickle.Unpickler):
    """An unpickler for plain data: containers, numbers, strings, numpy arrays/scalars/dtypes."""

    def find_class(self, module: str, name: str):
        if not _allowed(module, name):
            raise RefusedGlobal(f"{module}.{name}")
        return _resolve(module, name)

    def persistent_load(self, pid):  # a data pickle has no persistent references
        raise pickle.UnpicklingError("persistent references are not allowed")


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list (its full name is the message)."""


def load_data_pickle(path: str | os.PathLike) -> Any:
    """Load a data-only pickle file; anything else is refused with a MedSegError naming what it asked for."""
    path = Path(path)
    if not path.is_file():
        raise MedSegError(f"File not found: {path}")
    return loads_data_pickle(path.read_bytes(), str(path))


def loads_data_pickle(data: bytes, source: str = "the pickle") -> Any:
    try:
        return DataUnpickler(io.BytesIO(data), encoding="latin1").load()  # latin1: Python 2 era numpy pickles
    except RefusedGlobal as exc:
        raise MedSegError(f"Refusing to read {source}: it asks for {exc}, which could run code on this computer. "
                          "A genuine nnU-Net v1 plans or model .pkl holds only data (dicts, lists, numpy arrays); "
                          "only use models from sources you trust.") from None
    except Exception as exc:  # truncated or not a pickle at all
        raise MedSegError(f"Cannot read {source}: it is not a readable data pickle ({exc}).") from None
