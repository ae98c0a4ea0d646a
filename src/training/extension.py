"""Find a user's trainer class wherever it lives: ``path/to/file.py:ClassName``, ``package.module:ClassName``
or ``package.module.ClassName`` (no scanning of our own package, no copying files into it)."""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from ..errors import MedSegError
from .trainer import Trainer


def load_trainer_class(spec: str):
    """The :class:`~chimerax.medseg.training.trainer.Trainer` subclass ``spec`` names."""
    if spec in ("nnUNetTrainer", "Trainer", "default"):
        return Trainer
    where, sep, name = spec.rpartition(":")
    if not sep:
        where, _, name = spec.rpartition(".")
    if not where or not name:
        raise MedSegError(f"Cannot read the trainer {spec!r}: give path/to/file.py:ClassName or "
                          "package.module:ClassName.")
    module = _load_file(Path(where).expanduser()) if where.endswith(".py") else _import(where, spec)
    cls = getattr(module, name, None)
    if cls is None:
        raise MedSegError(f"{where} defines no {name!r}; check the class name (it is case-sensitive).")
    if not (isinstance(cls, type) and issubclass(cls, Trainer)):
        raise MedSegError(f"{spec} is not a trainer: it must subclass chimerax.medseg.training.trainer.Trainer.")
    return cls


def _load_file(path: Path):
    if not path.is_file():
        raise MedSegError(f"Trainer file not found: {path}")
    # a name unique to the file, so two users' "my_trainer.py" never clash
    key = "medseg_user_trainer_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, path)
    if spec is None or spec.loader is None:  # no loader for the file's suffix
        raise MedSegError(f"Cannot load trainer file {path}: it is not a Python file (name it .py).")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module  # needed by pickling (data workers) and dataclasses
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[key]
        raise MedSegError(f"Cannot load trainer file {path}: {type(exc).__name__}: {exc}") from exc
    return module


def _import(module_name: str, spec: str):
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise MedSegError(f"Cannot import {module_name!r} for trainer {spec!r} ({exc}). Give a file path "
                          "(path/to/file.py:ClassName) or make the module importable.") from exc
