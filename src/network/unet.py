"""U-Nets rebuilt from nnU-Net plans.

Module and attribute names follow nnU-Net's `dynamic_network_architectures` so that the
state dicts of public nnU-Net v2 checkpoints load strictly (including the duplicated keys:
each conv block registers its conv and norm both by name and inside ``all_modules``, and the
decoder keeps a reference to the encoder).
"""
from __future__ import annotations

from collections.abc import Sequence
from math import prod
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from . import slabs

if TYPE_CHECKING:  # the classes the mixins below are mixed into, so their attributes and super() type-check
    from torch.nn.modules.conv import _ConvNd as _ConvBase
    from torch.nn.modules.conv import _ConvTransposeNd as _ConvTransposeBase
else:
    _ConvBase = _ConvTransposeBase = object


def _same_padding(kernel: Sequence[int]) -> list[int]:
    return [(k - 1) // 2 for k in kernel]


def _cpu_inference(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled() \
        and torch.backends.mkldnn.is_available()


# Instance statistics of tensors above this many elements come from sums and sums of squares.
FAST_STATS_MIN_ELEMENTS = 2**20
# E[x^2] - mean^2 keeps about 7 - log10(mean^2 / var) digits; with fewer than ~4 left, recompute exactly.
CANCELLATION_LIMIT = 1e3
# Passes over a large feature map go a few rows at a time, so that the rows stay in cache from one
# pass to the next (the squares after the sums; the leaky ReLU after the scaling).
CHUNK_BYTES = 4 * 2**20


def row_chunks(y: torch.Tensor) -> list[torch.Tensor]:
    """Views of ``y``'s rows (first spatial axis), about CHUNK_BYTES each."""
    row_bytes = y.element_size() * y[:, :, :1].numel()
    return [y[:, :, z0:z1] for z0, z1 in slabs.slabs(row_bytes, y.shape[2], 0, CHUNK_BYTES)]


class ChannelStats:
    """Per-channel sums and sums of squares of a feature map, gathered a few rows at a time.

    ``torch.var_mean`` (Welford) runs at a fraction of memory speed on large CPU tensors. Sums and
    sums of squares of a few rows at a time (short enough to stay accurate in float32, and in cache
    while squared), combined in float64, are several times faster. Slab-wise convolutions hand
    each slab of their output to ``add`` while it is still in cache, which saves a pass over the map.
    """

    def __init__(self) -> None:
        self.sums: torch.Tensor | None = None
        self.squares: torch.Tensor | None = None
        self._buffer: torch.Tensor | None = None

    def add(self, rows: torch.Tensor) -> None:
        dims = tuple(range(2, rows.ndim))
        if self.sums is None or self.squares is None:  # the first rows (both are set together)
            self.sums = torch.zeros(rows.shape[:2], dtype=torch.float64, device=rows.device)
            self.squares = torch.zeros_like(self.sums)
        for part in row_chunks(rows):
            if self._buffer is None or self._buffer.shape != part.shape:
                self._buffer = torch.empty_like(part)  # laid out like part: both reductions run in one order
            self.sums += part.sum(dims).double()
            self.squares += torch.mul(part, part, out=self._buffer).sum(dims).double()

    def mean_var(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and biased variance of ``y``, all of whose rows were added, shaped (b, c, 1, ..., 1).
        Channels whose mean dwarfs their spread would lose digits to cancellation; those are
        recomputed exactly."""
        if self.sums is None or self.squares is None:
            raise ValueError("ChannelStats.mean_var before any rows were added")
        n = y[0, 0].numel()
        mean = self.sums / n
        var = (self.squares / n - mean * mean).clamp_min(0)
        for i, j in (mean * mean > CANCELLATION_LIMIT * var).nonzero().tolist():
            var[i, j] = torch.var_mean(y[i, j].double(), correction=0)[0]
        keep = tuple(y.shape[:2]) + (1,) * (y.ndim - 2)
        return mean.to(y.dtype).view(keep), var.to(y.dtype).view(keep)


def channel_mean_var(y: torch.Tensor, stats: ChannelStats | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and biased variance over the spatial axes, shaped (b, c, 1, ..., 1); from ``stats`` when
    those were gathered while ``y`` was made."""
    if stats is not None and stats.sums is not None:
        return stats.mean_var(y)
    if y.numel() < FAST_STATS_MIN_ELEMENTS:
        var, mean = torch.var_mean(y, dim=tuple(range(2, y.ndim)), keepdim=True, correction=0)
        return mean, var
    stats = ChannelStats()
    stats.add(y)
    return stats.mean_var(y)


class _FastConv(_ConvBase):
    """Convolution that always takes oneDNN on the CPU at inference.

    PyTorch sends batch-1 inputs with few channels or small spatial extent to a slower
    reference kernel; nnU-Net's first layer and deepest stages hit that path. Same weights,
    same result up to float rounding.
    """

    def forward(self, x: torch.Tensor, on_slab: slabs.OnSlab | None = None) -> torch.Tensor:
        """``on_slab``: called with each slab of the output, if it is made slab by slab."""
        if _cpu_inference(x) and self.padding_mode == "zeros":
            return self.forward_with(x, self.weight, self.bias, on_slab)
        return super().forward(x)

    def forward_with(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                     on_slab: slabs.OnSlab | None = None) -> torch.Tensor:
        """CPU inference with other parameters of this conv's shape (a batch norm folded in)."""
        if slabs.worth_slabbing(self, x):
            return slabs.conv_slabs(self, x, on_slab, weight=weight, bias=bias)
        return torch.ops.aten.mkldnn_convolution(x, weight, bias, self.padding, self.stride, self.dilation,
                                                 self.groups)


class FastConv2d(_FastConv, nn.Conv2d):
    pass


class FastConv3d(_FastConv, nn.Conv3d):
    pass


class _PatchUpsample(_ConvTransposeBase):
    """Transposed convolution whose kernel equals its stride (nnU-Net's decoder upsampling).

    The output patches do not overlap, so it is one matrix product plus a reshuffle; at
    inference on the CPU that is several times faster than PyTorch's generic kernel.
    """

    @property
    def patchwise(self) -> bool:
        """Kernel equal to stride, no padding: each input voxel makes its own output patch."""
        return list(self.kernel_size) == list(self.stride) and not any(self.padding)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        """``output_size``: as for PyTorch's transposed convs (which then do the work)."""
        if output_size is not None or not (_cpu_inference(x) and self.patchwise):
            return super().forward(x, output_size)
        return self.upsample_into(x, self.empty_output(x))

    def empty_output(self, x: torch.Tensor) -> torch.Tensor:
        """An uninitialised channels-last tensor shaped like the upsampled ``x``."""
        shape = (x.shape[0], self.out_channels) + tuple(s * k for s, k in zip(x.shape[2:], self.kernel_size))
        return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=slabs.CHANNELS_LAST[x.ndim])

    def upsample_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Writes the upsampled ``x`` into ``out``, a channels-last tensor (or dense row range of one)."""
        b, cin, *spatial = x.shape
        cout, kernel, dims = self.out_channels, list(self.kernel_size), len(spatial)
        # weight columns ordered (k1..kn, cout), so each reshuffled run is cout values long; the bias
        # rides along in the matrix product instead of costing a pass of its own
        weight = self.weight.movedim(1, -1).reshape(cin, -1)
        voxels = x.movedim(1, -1).reshape(-1, cin)
        if self.bias is None:
            products = torch.mm(voxels, weight)
        else:
            products = torch.addmm(self.bias.repeat(prod(kernel)), voxels, weight)
        # (b, s1..sn, k1..kn, cout) -> (b, s1, k1, ..., sn, kn, cout), the channels-last order of out
        order = [0] + [i for d in range(dims) for i in (1 + d, dims + 1 + d)] + [2 * dims + 1]
        interleaved = [n for s, k in zip(spatial, kernel) for n in (s, k)]
        out.movedim(1, -1).view(b, *interleaved, cout).copy_(products.view(b, *spatial, *kernel, cout).permute(order))
        return out


class PatchUpsample2d(_PatchUpsample, nn.ConvTranspose2d):
    pass


class PatchUpsample3d(_PatchUpsample, nn.ConvTranspose3d):
    pass


class ConvNormAct(nn.Module):
    """conv -> (dropout) -> norm -> nonlinearity (or conv -> nonlin -> norm with nonlin_first)."""

    def __init__(self, ops: LayerOps, in_ch: int, out_ch: int, kernel: Sequence[int], stride: Sequence[int],
                 bias: bool, with_nonlin: bool = True, with_dropout: bool = True) -> None:
        super().__init__()
        # torch's stubs want exactly dim ints (or one int); any sequence works, stored as a tuple
        self.conv = ops.conv(in_ch, out_ch, list(kernel), list(stride),  # type: ignore[arg-type]
                             padding=_same_padding(kernel), bias=bias)  # type: ignore[arg-type]
        layers: list[nn.Module] = [self.conv]
        if with_dropout and ops.dropout is not None:
            self.dropout = ops.dropout(**ops.dropout_kwargs)
            layers.append(self.dropout)
        if ops.norm is not None:
            self.norm = ops.norm(out_ch, **ops.norm_kwargs)
            layers.append(self.norm)
        if with_nonlin and ops.nonlin is not None:
            self.nonlin = ops.nonlin(**ops.nonlin_kwargs)
            layers.append(self.nonlin)
            if ops.nonlin_first and ops.norm is not None:
                layers[-1], layers[-2] = layers[-2], layers[-1]
        self.all_modules = nn.Sequential(*layers)
        self._folded: tuple | None = None  # conv_params' batch-norm-folded weights, with the key they were made for

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _cpu_inference(x) and self._fusable():
            stats = self.new_stats()
            weight, bias = self.conv_params()
            y = self.conv.forward_with(x, weight, bias, stats.add if stats is not None else None)
            return self.norm_act_in_place(y, stats)
        return self.all_modules(x)

    def forward_in_place(self, x: torch.Tensor) -> torch.Tensor:
        """Like ``forward`` but may overwrite ``x`` (the caller no longer needs it)."""
        if _cpu_inference(x) and self._fusable() and slabs.same_shape(self.conv, x.shape[1]) and slabs.large(x):
            stats = self.new_stats()
            on_slab = stats.add if stats is not None else None
            weight, bias = self.conv_params()
            y = slabs.conv_slabs(self.conv, x, on_slab, in_place=True, weight=weight, bias=bias)
            return self.norm_act_in_place(y, stats)
        return self.forward(x)

    def conv_params(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The weight and bias the fused CPU path convolves with: the conv's own, or with a running batch
        norm's per-channel scale and shift folded in (conv, then scale and shift, is one conv), so that the
        norm costs no pass over the output. ``norm_act_in_place`` then applies only the nonlinearity."""
        weight, bias = self.conv.weight, self.conv.bias
        if not self._running_batch_norm():
            return weight, bias
        # folded once per set of weights (every tile of a pass uses them): keyed by where the tensors
        # live and their version counters, so loading another fold's weights refolds
        tensors = (weight, bias, self.norm.weight, self.norm.bias, self.norm.running_mean, self.norm.running_var)
        key = tuple((t.data_ptr(), t._version) for t in tensors if t is not None)
        cached = self._folded
        if cached is None or cached[0] != key:
            scale, shift = self._batch_norm_scale_shift()
            folded = shift if bias is None else torch.addcmul(shift, bias, scale)
            cached = (key, weight * scale.view((-1,) + (1,) * (weight.ndim - 1)), folded)
            self._folded = cached
        return cached[1], cached[2]

    def _batch_norm_scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        norm = self.norm
        scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
        return scale, norm.bias - norm.running_mean * scale

    def _fusable(self) -> bool:
        return ((self._instance_norm() or self._running_batch_norm())
                and self.norm.affine and isinstance(getattr(self, "nonlin", None), nn.LeakyReLU)
                and not hasattr(self, "dropout") and self.all_modules[-1] is self.nonlin)

    def _instance_norm(self) -> bool:
        return isinstance(getattr(self, "norm", None), (nn.InstanceNorm2d, nn.InstanceNorm3d))

    def _running_batch_norm(self) -> bool:
        """A batch norm that normalizes with its stored statistics (nnU-Net v1's _BN trainers at inference)."""
        norm = getattr(self, "norm", None)
        return (isinstance(norm, (nn.BatchNorm2d, nn.BatchNorm3d)) and not norm.training
                and norm.running_mean is not None)

    def new_stats(self) -> ChannelStats | None:
        """Where the output's statistics are to be gathered as it is made: instance norms only."""
        return ChannelStats() if self._instance_norm() else None

    def norm_act_in_place(self, y: torch.Tensor, stats: ChannelStats | None = None) -> torch.Tensor:
        """Instance norm and leaky ReLU in the conv's own output buffer (no second full-size tensor);
        ``stats``: the output's, if gathered while it was made. ``y`` must come from ``conv_params``: a
        running batch norm is already folded into it, and only the leaky ReLU is left."""
        if self._running_batch_norm():
            for part in row_chunks(y):
                nn.functional.leaky_relu_(part, self.nonlin.negative_slope)
            return y
        mean, var = channel_mean_var(y, stats)
        shape = (1, -1) + (1,) * (y.ndim - 2)
        scale = self.norm.weight.view(shape) * torch.rsqrt(var + self.norm.eps)
        shift = self.norm.bias.view(shape) - mean * scale
        for part in row_chunks(y):
            torch.addcmul(shift, part, scale, out=part)
            nn.functional.leaky_relu_(part, self.nonlin.negative_slope)
        return y


class ConvStack(nn.Module):
    """``n`` ConvNormAct blocks; only the first one strides."""

    def __init__(self, ops: LayerOps, n: int, in_ch: int, out_ch: int, kernel, stride, bias: bool) -> None:
        super().__init__()
        ones = [1] * len(kernel)
        self.convs = nn.Sequential(*[
            ConvNormAct(ops, in_ch if i == 0 else out_ch, out_ch, kernel, stride if i == 0 else ones, bias)
            for i in range(n)])

    def blocks(self) -> list[ConvNormAct]:
        """The ConvNormAct blocks (nn.Sequential hands them out typed as plain Modules)."""
        return cast("list[ConvNormAct]", list(self.convs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = self.blocks()
        x = blocks[0](x)
        for block in blocks[1:]:
            x = block.forward_in_place(x)  # x is this stack's own intermediate
        return x


class BasicResidualBlock(nn.Module):
    """Two convs plus a skip path (average pool, then a 1x1 conv when the width changes)."""

    def __init__(self, ops: LayerOps, in_ch: int, out_ch: int, kernel, stride, bias: bool) -> None:
        super().__init__()
        ones = [1] * len(kernel)
        self.conv1 = ConvNormAct(ops, in_ch, out_ch, kernel, stride, bias)
        self.conv2 = ConvNormAct(ops, out_ch, out_ch, kernel, ones, bias, with_nonlin=False, with_dropout=False)
        self.nonlin2 = ops.nonlin(**ops.nonlin_kwargs) if ops.nonlin is not None else nn.Identity()
        strided = any(s != 1 for s in stride)
        skip: list[nn.Module] = []
        if strided:
            skip.append(ops.avg_pool(list(stride), list(stride)))  # type: ignore[arg-type]  # as for the convs
        if in_ch != out_ch:
            skip.append(ConvNormAct(ops, in_ch, out_ch, ones, ones, False, with_nonlin=False, with_dropout=False))
        self.skip = nn.Sequential(*skip) if skip else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        out = out + self.skip(x)
        return self.nonlin2(out)


class ResidualStack(nn.Module):
    def __init__(self, ops: LayerOps, n: int, in_ch: int, out_ch: int, kernel, stride, bias: bool) -> None:
        super().__init__()
        ones = [1] * len(kernel)
        self.blocks = nn.Sequential(*[
            BasicResidualBlock(ops, in_ch if i == 0 else out_ch, out_ch, kernel, stride if i == 0 else ones, bias)
            for i in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class Encoder(nn.Module):
    """Returns the feature maps of every stage (the skips), the bottleneck last."""

    def __init__(self, ops: LayerOps, in_ch: int, features: Sequence[int], kernels, strides,
                 blocks_per_stage: Sequence[int], bias: bool, residual: bool) -> None:
        super().__init__()
        self.stem = None
        if residual:
            self.stem = ConvStack(ops, 1, in_ch, features[0], kernels[0], [1] * len(kernels[0]), bias)
            in_ch = features[0]
        stages: list[nn.Module] = []
        for feat, kernel, stride, n in zip(features, kernels, strides, blocks_per_stage):
            if residual:
                stages.append(ResidualStack(ops, n, in_ch, feat, kernel, stride, bias))
            else:
                stages.append(nn.Sequential(ConvStack(ops, n, in_ch, feat, kernel, stride, bias)))
            in_ch = feat
        self.stages = nn.Sequential(*stages)
        self.output_channels = list(features)
        self.strides = [list(s) for s in strides]
        self.kernel_sizes = [list(k) for k in kernels]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.stem is not None:
            x = self.stem(x)
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


class Decoder(nn.Module):
    """Transposed conv up, concatenate the skip, convs; a 1x1 segmentation head per stage."""

    def __init__(self, ops: LayerOps, encoder: Encoder, num_classes: int, convs_per_stage: Sequence[int],
                 bias: bool, deep_supervision: bool = False, stage_kernels: Sequence | None = None,
                 transpconv_bias: bool | None = None, head_bias: bool = True) -> None:
        """``stage_kernels``: per decoder stage (lowest resolution first); by default the skip's own stage's
        kernel. nnU-Net v1's Generic_UNet differs in that and in its biases (see generic_unet.py)."""
        super().__init__()
        self.encoder = encoder  # kept as nnU-Net does: its weights appear under decoder.encoder.* too
        self.deep_supervision = deep_supervision
        feats, strides = encoder.output_channels, encoder.strides
        kernels = list(stage_kernels) if stage_kernels is not None else \
            [encoder.kernel_sizes[-(s + 1)] for s in range(1, len(feats))]
        up_bias = bias if transpconv_bias is None else transpconv_bias
        stages, ups, heads = [], [], []
        for s in range(1, len(feats)):
            below, skip = feats[-s], feats[-(s + 1)]
            ups.append(ops.transposed_conv(below, skip, strides[-s], strides[-s],  # type: ignore[arg-type]
                                           bias=up_bias))  # strides are lists: as for the convs
            stages.append(ConvStack(ops, convs_per_stage[s - 1], 2 * skip, skip, kernels[s - 1],
                                    [1] * len(kernels[0]), bias))
            heads.append(ops.conv(skip, num_classes, 1, 1, 0, bias=head_bias))
        self.stages = nn.ModuleList(stages)
        self.transpconvs = nn.ModuleList(ups)
        self.seg_layers = nn.ModuleList(heads)

    def forward(self, skips: list[torch.Tensor]):
        x = skips.pop()
        outputs = []
        last = len(self.stages) - 1
        for s, (up, stage) in enumerate(zip(self.transpconvs, self.stages)):
            up, stage = cast(_PatchUpsample, up), cast(ConvStack, stage)  # nn.ModuleList items are plain Modules
            skip = skips.pop()  # dropped from the list so it is freed as soon as it is used
            if _cpu_inference(x) and isinstance(stage.convs[0], ConvNormAct) and stage.convs[0]._fusable():
                x = _merge_without_concat(stage, up, x, skip)
            else:
                x = stage(torch.cat((up(x), skip), 1))
            del skip
            if self.deep_supervision:
                outputs.append(self.seg_layers[s](x))
            elif s == last:
                outputs.append(self.seg_layers[-1](x))
        if not self.deep_supervision:
            return outputs[0]
        return outputs[::-1]  # highest resolution first, as nnU-Net's loss expects


def _merge_without_concat(stage: ConvStack, up: _PatchUpsample, below: torch.Tensor,
                          skip: torch.Tensor) -> torch.Tensor:
    """``stage(cat(up(below), skip))`` without the concatenated tensor: the first conv is split
    by input channels (conv(cat(a, b)) = conv_a(a) + conv_b(b)), which saves the largest buffer.
    At high resolution the upsampled tensor is made one slab at a time, never whole."""
    first, *rest = stage.blocks()
    conv, split = first.conv, up.out_channels
    stats = first.new_stats()
    weight, bias = first.conv_params()
    if slabs.large(skip) and getattr(up, "patchwise", False) and slabs.same_rows(conv):
        y = slabs.upsample_conv_sum(conv, up, below, skip, stats.add if stats is not None else None, weight, bias)
    else:
        args = (conv.padding, conv.stride, conv.dilation, conv.groups)
        y = torch.ops.aten.mkldnn_convolution(up(below), weight[:, :split], bias, *args)
        y += torch.ops.aten.mkldnn_convolution(skip, weight[:, split:], None, *args)
    y = first.norm_act_in_place(y, stats)
    for block in rest:
        y = block.forward_in_place(y)
    return y


class UNet(nn.Module):
    """PlainConvUNet (``residual=False``) or ResidualEncoderUNet (``residual=True``)."""

    def __init__(self, ops: LayerOps, input_channels: int, num_classes: int, features: Sequence[int],
                 kernels, strides, blocks_per_stage: Sequence[int], convs_per_stage_decoder: Sequence[int],
                 bias: bool, residual: bool, deep_supervision: bool = False, **decoder_options) -> None:
        super().__init__()
        self.encoder = Encoder(ops, input_channels, features, kernels, strides, blocks_per_stage, bias, residual)
        self.decoder = Decoder(ops, self.encoder, num_classes, convs_per_stage_decoder, bias, deep_supervision,
                               **decoder_options)

    def forward(self, x: torch.Tensor):
        if not _cpu_inference(x) or x.ndim not in slabs.CHANNELS_LAST:
            return self.decoder(self.encoder(x))
        # oneDNN convolves channels-last tensors faster than plain ones (15-35 % here), and slabs of
        # rows are then contiguous; the (few-channel) outputs go back to the plain layout
        out = self.decoder(self.encoder(x.contiguous(memory_format=slabs.CHANNELS_LAST[x.ndim])))
        return [o.contiguous() for o in out] if isinstance(out, list) else out.contiguous()


class LayerOps:
    """The layer types a plan names, for 2D or 3D."""

    def __init__(self, dim: int, norm: type | None, norm_kwargs: dict | None, dropout: type | None,
                 dropout_kwargs: dict | None, nonlin: type | None, nonlin_kwargs: dict | None,
                 nonlin_first: bool = False) -> None:
        self.conv = {2: FastConv2d, 3: FastConv3d}[dim]
        self.transposed_conv = {2: PatchUpsample2d, 3: PatchUpsample3d}[dim]
        self.avg_pool = {2: nn.AvgPool2d, 3: nn.AvgPool3d}[dim]
        self.norm, self.norm_kwargs = norm, dict(norm_kwargs or {})
        self.dropout, self.dropout_kwargs = dropout, dict(dropout_kwargs or {})
        self.nonlin, self.nonlin_kwargs = nonlin, dict(nonlin_kwargs or {})
        self.nonlin_first = nonlin_first
