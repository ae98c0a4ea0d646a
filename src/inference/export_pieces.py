"""Labels on the image grid without ever holding every channel's logits there at once.

The export resamples the network-grid logits box by box (``preprocessing/resample_pieces.py``) and
turns each box into labels straight away, written into the label map. Peak memory is the network-grid
accumulator, the label map and one box's float32 values; the box size follows a memory budget.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..preprocessing.resample_pieces import AxisMap, Scratch, resample_box

if TYPE_CHECKING:  # torch is imported by the callers; `medseg --help` must not load it
    import torch

# The float32 working memory one box may take; a few temporaries of this size exist while it is resampled.
PIECE_BYTES = 256 << 20
# Box-sized tensors alive at once: the values at `low` and at `high` along the last two axes resampled.
_COPIES = 4

Box = tuple[tuple[int, int], ...]


def boxes(shape: Sequence[int], channels: int, piece_bytes: int = PIECE_BYTES) -> Iterator[Box]:
    """Boxes covering ``shape`` (3 axes): whole rows of the last axis, as many rows (then slices) as fit."""
    rows = max(1, piece_bytes // (_COPIES * 4 * channels * shape[-1]))
    if rows < shape[1]:
        for z in range(shape[0]):
            for y in range(0, shape[1], rows):
                yield (z, z + 1), (y, min(y + rows, shape[1])), (0, shape[2])
        return
    slices = max(1, rows // shape[1])
    for z in range(0, shape[0], slices):
        yield (z, min(z + slices, shape[0])), (0, shape[1]), (0, shape[2])


def piece_memory(shape: Sequence[int], channels: int, piece_bytes: int = PIECE_BYTES) -> int:
    """Bytes one box's work needs at most: the budget (one row of a very wide image can exceed it),
    never more than the whole grid."""
    row = _COPIES * 4 * channels * int(shape[-1])
    return min(max(piece_bytes, row), row * int(np.prod(shape[:-1])))


def labels_in_pieces(logits: torch.Tensor, maps: Sequence[AxisMap], to_labels: Callable[[torch.Tensor], np.ndarray],
                     out: np.ndarray, offset: Sequence[int], piece_bytes: int = PIECE_BYTES) -> np.ndarray:
    """Write the labels of the resampled ``logits`` (k, *source grid) into ``out`` at ``offset``.

    ``to_labels`` turns one box's float32 values (k, *box) into its label array.
    """
    shape = [m.size for m in maps]
    scratch = Scratch()
    for box in boxes(shape, logits.shape[0], piece_bytes):
        values = resample_box(logits, maps, box, scratch)
        target = tuple(slice(o + a, o + b) for o, (a, b) in zip(offset, box))
        out[target] = to_labels(values)
        del values
    return out
