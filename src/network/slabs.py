"""Convolutions computed slab by slab along the first spatial axis, for CPU inference.

oneDNN reorders a whole input and output into its blocked layout around each convolution, so a
full-size conv at nnU-Net's highest resolution briefly needs two or three copies of a 256 MB
feature map. Computing the output a slab of rows at a time keeps those copies slab-sized; when
the output has the input's shape, it can even replace the input (``write_slabs``). In the
channels-last layout the network runs in, a slab of rows is contiguous and goes to oneDNN without
a copy. Results equal the whole-tensor convolution up to float rounding.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from math import prod
from typing import TYPE_CHECKING, Callable, Protocol

import torch
from torch import nn

if TYPE_CHECKING:
    from torch.nn.modules.conv import _ConvNd  # nn.Conv2d's and nn.Conv3d's base (and unet's FastConvs')


# Tensors above this size are convolved in slabs of about SLAB_BYTES (module attributes so tests
# can force every path with tiny tensors).
SLAB_MIN_BYTES = 32 * 2**20
SLAB_BYTES = 24 * 2**20

Rows = Callable[[int, int], torch.Tensor]  # (lo, hi) -> the input's rows lo..hi
OnSlab = Callable[[torch.Tensor], None]     # sees each slab of an output as it is made (still in cache)


CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}  # by tensor rank


def memory_format(x: torch.Tensor) -> torch.memory_format:
    """How ``x`` is laid out: channels-last (the fast layout for oneDNN's CPU convolutions) or plain."""
    fmt = CHANNELS_LAST.get(x.ndim)
    if fmt is not None and not x.is_contiguous() and x.is_contiguous(memory_format=fmt):
        return fmt
    return torch.contiguous_format


# Only feature maps at least this large are recycled: smaller ones cost few page faults, and a
# recycled buffer stays allocated while idle (the head's output, say, through the next pass).
RECYCLE_MIN_BYTES = 64 * 2**20
_recycling = threading.local()  # .storages: the storages of recycled buffers, while reusing_buffers is on


@contextmanager
def reusing_buffers() -> Iterator[None]:
    """Large feature maps made inside this context are recycled once nothing uses them any more.

    A sliding window runs the same network on tiles of one size, so every pass asks for the same
    buffers. A fresh buffer costs page faults on first touch (a 256 MB map: 20-200 ms, depending on
    how many huge pages the kernel has free); a recycled one is already mapped. Leaving the
    (outermost) context frees them all.
    """
    outer = getattr(_recycling, "storages", None)
    _recycling.storages = [] if outer is None else outer
    try:
        yield
    finally:
        _recycling.storages = outer


def new_buffer(x: torch.Tensor, shape, fmt: torch.memory_format | None = None) -> torch.Tensor:
    """An uninitialised tensor of ``shape`` with ``x``'s dtype and device, laid out as ``fmt`` (default:
    like ``x``); recycled inside ``reusing_buffers``."""
    fmt, shape = fmt or memory_format(x), tuple(shape)
    storages, nbytes = getattr(_recycling, "storages", None), x.element_size() * prod(shape)
    if storages is None or nbytes < RECYCLE_MIN_BYTES or not _COUNTS_USES:
        return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt)
    for storage in storages:
        # one use: only this list holds it (every tensor made from it, views included, adds one)
        if storage.nbytes() == nbytes and storage.device == x.device and _use_count(storage) == 1:
            stride = torch.empty(shape, device="meta", memory_format=fmt).stride()
            return torch.empty(0, dtype=x.dtype, device=x.device).set_(storage, 0, shape, stride)
    out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt)
    storages.append(out.untyped_storage())
    return out


# PyTorch's own count of the references to a storage (its CUDA-graph memory pools rely on it);
# a PyTorch without it simply gets no recycling
_COUNTS_USES = hasattr(torch._C, "_storage_Use_Count")


def _use_count(storage: torch.UntypedStorage) -> int:
    return torch._C._storage_Use_Count(storage._cdata)


def large(x: torch.Tensor) -> bool:
    return x.ndim >= 4 and x.element_size() * x.numel() > SLAB_MIN_BYTES


def slabbable(conv: _ConvNd) -> bool:
    return all(d == 1 for d in conv.dilation) and getattr(conv, "padding_mode", "zeros") == "zeros" \
        and not isinstance(conv.padding, str)


def same_rows(conv: _ConvNd) -> bool:
    """Output rows map one to one onto input rows (stride 1, 'same' padding, no groups)."""
    return (all(s == 1 for s in conv.stride) and slabbable(conv) and conv.groups == 1
            and all(2 * p + 1 == k for p, k in zip(_pads(conv), conv.kernel_size)))


def same_shape(conv: _ConvNd, channels: int) -> bool:
    """Like ``same_rows``, and the widths agree: the output can replace the input."""
    return conv.in_channels == conv.out_channels == channels and same_rows(conv)


def slabs(row_bytes: int, depth: int, halo: int, size: int | None = None) -> list[tuple[int, int]]:
    """Output row ranges (z0, z1) of about ``size`` (default SLAB_BYTES) each (``row_bytes``: the
    bytes read and written per output row), at least ``halo`` + 1 rows."""
    rows = max(halo + 1, (size or SLAB_BYTES) // max(row_bytes, 1))
    return [(z0, min(z0 + rows, depth)) for z0 in range(0, depth, rows)]


def row_bytes(conv: _ConvNd, x: torch.Tensor) -> int:
    """Bytes of input and output that one output row of ``conv`` over ``x`` touches."""
    out = output_shape(conv, x)
    rows_in = x.element_size() * prod(x.shape[:2]) * conv.stride[0] * prod(x.shape[3:])
    return rows_in + x.element_size() * prod(out[:2] + out[3:])


def worth_slabbing(conv: _ConvNd, x: torch.Tensor) -> bool:
    """The conv can go slab-wise and its input or output is large."""
    return slabbable(conv) and (large(x) or x.element_size() * prod(output_shape(conv, x)) > SLAB_MIN_BYTES)


def _pads(conv: _ConvNd) -> tuple[int, ...]:
    """The conv's padding in voxels: convs go slab-wise only without 'same'/'valid' (see slabbable)."""
    if isinstance(conv.padding, str):
        raise ValueError(f"a conv padded {conv.padding!r} cannot go slab by slab")
    return conv.padding


def output_shape(conv: _ConvNd, x: torch.Tensor) -> tuple[int, ...]:
    spatial = [(n + 2 * p - k) // s + 1 for n, p, k, s in zip(x.shape[2:], _pads(conv), conv.kernel_size,
                                                            conv.stride)]
    return (x.shape[0], conv.out_channels, *spatial)


def conv_rows(conv: _ConvNd, rows: Rows, depth: int, z0: int, z1: int, weight: torch.Tensor,
              bias: torch.Tensor | None) -> torch.Tensor:
    """Output rows z0..z1 of ``conv`` over an input of ``depth`` rows that ``rows`` hands out."""
    stride, pad, kernel = conv.stride[0], _pads(conv)[0], conv.kernel_size[0]
    first, last = z0 * stride - pad, (z1 - 1) * stride - pad + kernel   # rows read, zero padding outside
    lo, hi = max(first, 0), min(last, depth)
    part = rows(lo, hi)
    if first < lo or last > hi:
        part = nn.functional.pad(part, [0, 0] * (part.ndim - 3) + [lo - first, last - hi])
    # a slab of a channels-last batch of one is already contiguous: no copy
    part = part.contiguous(memory_format=memory_format(part))
    return torch.ops.aten.mkldnn_convolution(part, weight, bias, [0, *_pads(conv)[1:]],
                                             conv.stride, conv.dilation, conv.groups)


def conv_slabs(conv: _ConvNd, x: torch.Tensor, on_slab: OnSlab | None = None, in_place: bool = False,
               weight: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``conv(x)`` one slab of output rows at a time, into a new tensor or, ``in_place``, over ``x``
    (requires ``same_shape(conv, x.shape[1])``). ``weight``/``bias``: used instead of the conv's own
    (a batch norm folded in) when ``weight`` is given."""
    if weight is None:
        weight, bias = conv.weight, conv.bias
    target, halo = (x, _pads(conv)[0]) if in_place else (new_buffer(x, output_shape(conv, x)), 0)
    return write_slabs(target, halo, lambda z0, z1: conv_rows(
        conv, lambda lo, hi: x[:, :, lo:hi], x.shape[2], z0, z1, weight, bias), row_bytes(conv, x), on_slab)


def write_slabs(target: torch.Tensor, halo: int, compute: Callable[[int, int], torch.Tensor],
                bytes_per_row: int, on_slab: OnSlab | None = None) -> torch.Tensor:
    """``target[:, :, z0:z1] = compute(z0, z1)`` slab by slab, where ``compute`` may still read
    ``target``'s rows z0 - halo .. z1 + halo: each result waits one slab before it is written
    (the kernel's reach is at most one slab), so ``target`` can be the input being replaced."""
    pending: tuple[int, int, torch.Tensor] | None = None
    for z0, z1 in slabs(bytes_per_row, target.shape[2], halo):
        out = compute(z0, z1)
        if on_slab is not None:
            on_slab(out)
        if pending is not None:
            target[:, :, pending[0]:pending[1]] = pending[2]
        pending = (z0, z1, out)
    if pending is not None:  # None only for a target without rows
        target[:, :, pending[0]:pending[1]] = pending[2]
    return target


class PatchUpsampler(Protocol):
    """What the slab code needs of unet's patch-wise transposed convolution (kernel = stride)."""

    out_channels: int
    stride: tuple[int, ...]

    def empty_output(self, x: torch.Tensor) -> torch.Tensor: ...

    def upsample_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor: ...


def upsample_conv_sum(conv: _ConvNd, up: PatchUpsampler, below: torch.Tensor, skip: torch.Tensor,
                      on_slab: OnSlab | None = None, weight: torch.Tensor | None = None,
                      bias: torch.Tensor | None = None) -> torch.Tensor:
    """``conv(cat(up(below), skip))`` for nnU-Net's decoder, slab by slab: the first conv is split by
    input channels, each slab upsamples only the rows of ``below`` it reads (once: neighbouring slabs
    share rows), and the result replaces ``skip`` (the decoder's own copy) when the widths agree.
    ``weight``/``bias``: instead of the conv's own when ``weight`` is given (as ``conv_slabs``)."""
    if weight is None:
        weight, bias = conv.weight, conv.bias
    depth, split = skip.shape[2], up.out_channels
    w_up, w_skip = weight[:, :split], weight[:, split:]

    upsampled = _UpsampledRows(up, below)

    def compute(z0: int, z1: int) -> torch.Tensor:
        out = conv_rows(conv, upsampled, depth, z0, z1, w_up, bias)
        out += conv_rows(conv, lambda lo, hi: skip[:, :, lo:hi], depth, z0, z1, w_skip, None)
        return out

    if conv.out_channels == skip.shape[1]:
        target, halo = skip, _pads(conv)[0]
    else:
        target, halo = new_buffer(skip, (skip.shape[0], conv.out_channels) + tuple(skip.shape[2:])), 0
    return write_slabs(target, halo, compute, 2 * row_bytes(conv, skip), on_slab)  # upsampled rows + skip's


class _UpsampledRows:
    """Rows lo..hi of ``up(below)`` for slabs that move forward: each row of ``below`` is upsampled
    once, and the rows the last slab shares with the next one are kept."""

    def __init__(self, up: PatchUpsampler, below: torch.Tensor) -> None:
        self.up, self.below, self.step = up, below, up.stride[0]
        self.first: int = 0   # the kept upsampled rows start at row first * step of below's
        self.rows: torch.Tensor | None = None

    def __call__(self, lo: int, hi: int) -> torch.Tensor:
        step, below = self.step, self.below
        first, last = lo // step, -(-hi // step)   # rows of below that rows lo..hi come from
        kept = 0  # leading rows of below already upsampled for the last slab
        if self.rows is not None and self.first <= first:
            kept = min(max(self.first + self.rows.shape[2] // step - first, 0), last - first)
        out = self.up.empty_output(below[:, :, first:last])
        if kept and self.rows is not None:  # kept > 0 only with rows kept
            start = (first - self.first) * step
            out[:, :, :kept * step] = self.rows[:, :, start:start + kept * step]
        if first + kept < last:
            new = below[:, :, first + kept:last]
            self.up.upsample_into(new.contiguous(memory_format=memory_format(new)), out[:, :, kept * step:])
        self.first, self.rows = first, out
        return out[:, :, lo - first * step:hi - first * step]
