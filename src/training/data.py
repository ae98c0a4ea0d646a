"""Preprocessed cases on disk and random training patches with foreground oversampling.

Every patch is drawn from its own seed (run seed, step, index in the global batch), so a batch
is the same whether one process draws it, several data workers do, or several DDP ranks each
draw their share; and a resumed run sees exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MedSegError

FOREGROUND_OVERSAMPLING = 0.33


def sample_seed(seed: int, step: int, index: int, stream: int = 0) -> np.random.SeedSequence:
    """The seed of one sample: independent of how the batch is spread over processes."""
    return np.random.SeedSequence([int(seed), int(stream), int(step), int(index)])


class PreprocessedCases:
    """The cases of one configuration in ``<preprocessed>/<data_identifier>/`` (memory-mapped)."""

    def __init__(self, folder: str | os.PathLike, names: Sequence[str] | None = None) -> None:
        self.folder = Path(folder)
        available = sorted(p.name[:-5] for p in self.folder.glob("*.json"))
        if not available:
            raise MedSegError(f"No preprocessed cases in {self.folder}. Run `medseg plan DATASET` first.")
        if names is None:
            names = available
        missing = sorted(set(names) - set(available))
        if missing:
            raise MedSegError(f"Case(s) {', '.join(missing[:5])} are not preprocessed in {self.folder}; "
                              "run `medseg plan` again or fix the splits.")
        self.names = list(names)
        self._cache: dict[str, tuple] = {}

    def __len__(self) -> int:
        return len(self.names)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cache": {}}  # worker processes map the files themselves

    def load(self, name: str) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """(data (c, z, y, x), seg (1, z, y, x), class locations) of one case, memory-mapped."""
        if name not in self._cache:
            data = np.load(self.folder / f"{name}.npy", mmap_mode="r")
            seg = np.load(self.folder / f"{name}_seg.npy", mmap_mode="r")
            loc_file = self.folder / f"{name}_locations.npz"
            with np.load(loc_file, allow_pickle=False) as npz:
                locations = {k: npz[k] for k in npz.files}
            self._cache[name] = (data, seg, locations)
        return self._cache[name]

    def properties(self, name: str) -> dict:
        return json.loads((self.folder / f"{name}.json").read_text())


@dataclass
class PatchSampler:
    """Random patches of ``sample_size`` (the final patch plus room for rotation/scaling).

    Args:
        cases: the training (or validation) cases.
        sample_size: the size of the patch cut from a case; data outside the case is 0, labels -1.
        final_size: the patch the network sees; only used to let patches reach over the border.
        batch_size: the global batch size (all processes together).
        oversample: fraction of each batch forced to contain foreground (nnU-Net: the last third).
    """

    cases: PreprocessedCases
    sample_size: Sequence[int]
    final_size: Sequence[int]
    batch_size: int
    oversample: float = FOREGROUND_OVERSAMPLING
    seed: int = 0
    stream: int = 0  # training and validation draw from different streams

    def forces_foreground(self, index: int) -> bool:
        return not index < round(self.batch_size * (1 - self.oversample))

    def sample(self, step: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Patch ``index`` of the global batch at ``step``: (data (c, *size) float32, seg (1, *size) int16)."""
        rng = np.random.default_rng(sample_seed(self.seed, step, index, self.stream))
        name = self.cases.names[rng.integers(len(self.cases))]
        data, seg, locations = self.cases.load(name)
        flat = len(self.sample_size) == 2  # 2D configuration: one slice of the 3D case
        size = (1, *self.sample_size) if flat else tuple(self.sample_size)
        final = (1, *self.final_size) if flat else tuple(self.final_size)
        lower = self._lower_corner(data.shape[1:], locations, self.forces_foreground(index), rng, size, final)
        data, seg = crop_padded(data, lower, size, 0), crop_padded(seg, lower, size, -1)
        return (data[:, 0], seg[:, 0]) if flat else (data, seg)

    def batch(self, step: int, indices: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        indices = range(self.batch_size) if indices is None else indices
        pairs = [self.sample(step, i) for i in indices]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    @staticmethod
    def _lower_corner(shape, locations: dict, force_fg: bool, rng, size, final) -> list[int]:
        """nnU-Net's box rule: the sample may reach past the border by half its surplus over the final
        patch (more only where the case is smaller than the sample); a foreground voxel is centred."""
        size, shape = np.asarray(size), np.asarray(shape)
        pad = np.maximum(size - np.asarray(final), size - shape)
        low = (-pad) // 2
        high = shape + pad // 2 + pad % 2 - size
        eligible = [k for k, v in sorted(locations.items()) if len(v)] if force_fg else []
        if eligible:
            coords = locations[eligible[rng.integers(len(eligible))]]
            voxel = coords[rng.integers(len(coords))][1:]
            return [int(v) for v in np.maximum(voxel - size // 2, low)]
        return [int(rng.integers(lo, hi + 1)) for lo, hi in zip(low, high)]


def crop_padded(array: np.ndarray, lower: Sequence[int], size: Sequence[int], fill) -> np.ndarray:
    """``array[:, lower:lower+size]`` with ``fill`` where the box leaves the array."""
    out = np.full((array.shape[0], *size), fill, dtype=np.float32 if fill == 0 else np.int16)
    src, dst = [slice(None)], [slice(None)]
    for lo, n, dim in zip(lower, size, array.shape[1:]):
        a, b = max(lo, 0), min(lo + n, dim)
        if b <= a:
            return out
        src.append(slice(a, b))
        dst.append(slice(a - lo, b - lo))
    out[tuple(dst)] = array[tuple(src)]
    return out
