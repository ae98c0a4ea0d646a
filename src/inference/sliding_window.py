"""Sliding-window prediction with Gaussian importance weighting and mirroring test-time augmentation."""
from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Callable

import numpy as np

from ..errors import Cancelled
from ..memory import array_bytes, check_memory

Progress = Callable[[float, str], None]
ShouldStop = Callable[[], bool]


def tile_starts(image_size: Sequence[int], tile_size: Sequence[int], step: float) -> list[list[int]]:
    """Tile start positions per axis: evenly spread, overlapping by at least 1 - step of a tile."""
    starts = []
    for size, tile in zip(image_size, tile_size):
        size = max(size, tile)  # smaller images are padded up to one tile
        n = int(np.ceil((size - tile) / (tile * step))) + 1
        stride = (size - tile) / (n - 1) if n > 1 else 0
        starts.append([int(np.round(stride * i)) for i in range(n)])
    return starts


@lru_cache(maxsize=4)
def _gaussian(tile_size: tuple[int, ...], sigma_scale: float, peak: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter
    delta = np.zeros(tile_size)
    delta[tuple(s // 2 for s in tile_size)] = 1
    weights = gaussian_filter(delta, [s * sigma_scale for s in tile_size], 0, mode="constant", cval=0)
    return weights * (peak / weights.max())


def gaussian_weights(tile_size: Sequence[int], dtype, device=None, sigma_scale: float = 1 / 8, peak: float = 10.0):
    """Importance map peaking at the tile centre (sigma = tile/8, max ``peak``) as a torch tensor.

    Zeros are replaced by the smallest weight *after* conversion to ``dtype`` (fp16 underflows).
    """
    import torch
    weights = torch.from_numpy(_gaussian(tuple(int(t) for t in tile_size), sigma_scale, peak)).to(dtype)
    zero = weights == 0
    weights[zero] = weights[~zero].min()
    return weights.to(device)


def pad_to_tile(data, tile_size: Sequence[int]):
    """Zero-pad (c, ...) data symmetrically up to at least ``tile_size``; return it and the crop back."""
    import torch.nn.functional as F
    shape = data.shape[1:]
    extra = [max(t - s, 0) for s, t in zip(shape, tile_size)]
    below = [e // 2 for e in extra]
    if not any(extra):
        return data, tuple(slice(0, s) for s in shape)
    pads = []
    for b, e in reversed(list(zip(below, extra))):
        pads += [b, e - b]
    return F.pad(data, pads), tuple(slice(b, b + s) for b, s in zip(below, shape))


# Channels weighted at once: a 118-channel 128^3 tile weighted whole is a 1 GB float32 temporary.
_CHANNELS_AT_ONCE = 16


def _accumulate(logits, tile: tuple, tile_logits, weights) -> None:
    """Add one tile's Gaussian-weighted outputs into the accumulator, a few channels at a time."""
    for first in range(0, tile_logits.shape[0], _CHANNELS_AT_ONCE):
        part = slice(first, first + _CHANNELS_AT_ONCE)
        logits[(part,) + tile] += tile_logits[part].float() * weights


def mirror_combinations(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """The identity plus every non-empty combination of mirrored axes."""
    return [()] + [c for r in range(1, len(axes) + 1) for c in itertools.combinations(axes, r)]


def to_compute_device(batch, device):
    """``batch`` on ``device``; from the CPU to a GPU through pinned memory, so the copy runs asynchronously."""
    if device is None or batch.device == device:
        return batch
    if device.type == "cuda" and batch.device.type == "cpu":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


class SlidingWindow:
    """Runs ``network`` over ``data`` (c, *spatial) tile by tile and returns averaged logits.

    For 2d networks on 3D data, each slice of the first axis is a batch of its own tiles.
    """

    def __init__(self, network, tile_size: Sequence[int], num_outputs: int, step: float = 0.5,
                 mirror_axes: Sequence[int] = (), device=None, use_gaussian: bool = True,
                 tiles_per_batch: int = 1, accumulate_dtype: str = "float16",
                 activation: str | None = None) -> None:
        self.network = network
        self.tile_size = tuple(int(t) for t in tile_size)
        self.num_outputs = num_outputs
        self.step = step
        self.mirror_axes = tuple(mirror_axes)
        self.device = device
        self.use_gaussian = use_gaussian
        self.tiles_per_batch = max(1, tiles_per_batch)
        # nnU-Net accumulates in half precision (also on CPU); we do the same by default so that results
        # match it closely, and it halves the accumulator's memory. "float32" is more exact.
        self.accumulate_dtype = accumulate_dtype
        # "softmax"/"sigmoid": applied to every forward pass before averaging (nnU-Net v1 averages
        # probabilities over mirrorings and tiles); None: logits are averaged (v2)
        self.activation = activation
        self.forward_seconds = 0.0  # time in the network's forward passes (mirrorings included)
        # Data and accumulators live on the compute device (as nnU-Net's default); after a CUDA out-of-memory
        # error they move to the CPU and only tiles travel (inference/device_fallback.py).
        self.results_on_device = True

    @property
    def results_device(self):
        import torch
        device = self.device or torch.device("cpu")
        return device if self.results_on_device else torch.device("cpu")

    def tiles(self, shape: Sequence[int]) -> list[tuple]:
        is_2d = len(self.tile_size) == len(shape) - 1
        plane = shape[1:] if is_2d else shape
        starts = tile_starts(plane, self.tile_size, self.step)
        boxes = [tuple(slice(s, s + t) for s, t in zip(corner, self.tile_size))
                 for corner in itertools.product(*starts)]
        if is_2d:
            return [(z,) + box for z in range(shape[0]) for box in boxes]
        return boxes

    def num_forward_passes(self, shape: Sequence[int]) -> int:
        return len(self.tiles(shape)) * len(mirror_combinations(self.mirror_axes))

    def prepare(self, data):
        """Padded data on the device, the crop back, the tiles and the Gaussian weights of one run."""
        import torch
        device = self.results_device
        padded, unpad = pad_to_tile(data, self.tile_size if len(self.tile_size) == data.ndim - 1
                                    else (data.shape[1],) + self.tile_size)
        dtype = getattr(torch, self.accumulate_dtype)
        weights = gaussian_weights(self.tile_size, dtype, device) if self.use_gaussian else \
            torch.ones(self.tile_size, device=device, dtype=dtype)
        return padded.to(device), unpad, self.tiles(padded.shape[1:]), weights

    def forward(self, batch, combos: Sequence[tuple[int, ...]] | None = None):
        """Outputs of a batch of tiles, averaged over the mirrorings (``combos``, default: all of this
        window's), timed in ``forward_seconds``."""
        import torch
        started = time.perf_counter()
        out = self._predict_mirrored(to_compute_device(batch, self.device), combos)
        if out.device.type == "cuda":
            torch.cuda.synchronize(out.device)  # the GPU works asynchronously: wait to time it
        self.forward_seconds += time.perf_counter() - started
        return out.to(batch.device)

    def __call__(self, data, progress: Progress | None = None, should_stop: ShouldStop | None = None,
                 done: float = 0.0, share: float = 1.0, keep_accumulator_dtype: bool = False):
        """Averaged logits (k, *data's grid): float32, or with ``keep_accumulator_dtype`` the accumulator
        itself (float16 by default, as nnU-Net), which spares a float32 copy of the whole grid."""
        import torch
        padded, unpad, tiles, weights = self.prepare(data)
        shape = padded.shape[1:]
        if padded.device.type == "cpu":
            check_memory(array_bytes((self.num_outputs + 1, *shape), weights.element_size()),
                         f"The sliding window's sums of {self.num_outputs} output channels over {tuple(shape)} voxels",
                         "Crop the image to the region of interest.")
        logits = torch.zeros((self.num_outputs, *shape), dtype=weights.dtype, device=padded.device)
        weight_sum = torch.zeros(shape, dtype=weights.dtype, device=padded.device)
        for first in range(0, len(tiles), self.tiles_per_batch):
            if should_stop is not None and should_stop():
                raise Cancelled("Prediction was stopped.")
            batch_tiles = tiles[first:first + self.tiles_per_batch]
            out = self.forward(torch.stack([padded[(slice(None),) + t] for t in batch_tiles]))
            for tile, tile_logits in zip(batch_tiles, out):
                _accumulate(logits, tile, tile_logits, weights)
                weight_sum[tile] += weights
            if progress is not None:
                progress(done + share * (first + len(batch_tiles)) / len(tiles),
                         f"tile {first + len(batch_tiles)} of {len(tiles)}")
        logits /= weight_sum
        logits = logits[(slice(None),) + unpad]
        return logits if keep_accumulator_dtype else logits.float()

    def _predict_mirrored(self, batch, combos: Sequence[tuple[int, ...]] | None = None):
        import torch
        combos = mirror_combinations(self.mirror_axes) if combos is None else combos
        total = None
        for axes in combos:
            dims = [a + 2 for a in axes]
            x = torch.flip(batch, dims) if dims else batch
            out = self._activate(self._forward(x))
            out = torch.flip(out, dims) if dims else out
            total = out if total is None else total + out
        if total is None:
            raise ValueError("no mirror combinations to predict with (not even the unmirrored input)")
        # one pass (no mirroring): its output as it is, no copy (a 118-channel 112^3 tile is 660 MB)
        return total if len(combos) == 1 else total.div_(len(combos))

    def _activate(self, out):
        import torch
        if self.activation == "softmax":
            return torch.softmax(out.float(), 1)
        if self.activation == "sigmoid":
            return torch.sigmoid(out.float())
        return out

    def _forward(self, x):
        import torch
        if x.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.float16):
                return self.network(x).float()
        return self.network(x)
