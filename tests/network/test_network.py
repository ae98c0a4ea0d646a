"""Our U-Nets load nnU-Net's state dicts strictly and compute the same outputs."""
import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet
from torch import nn

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.network.build import build_network


def _arch_kwargs(dim):
    kernels = [[1, 3, 3], [3, 3, 3], [3, 3, 3]] if dim == 3 else [[3, 3]] * 3
    strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2]] if dim == 3 else [[1, 1], [2, 2], [2, 2]]
    return dict(n_stages=3, features_per_stage=[4, 8, 16], kernel_sizes=kernels, strides=strides,
                n_conv_per_stage_decoder=[1, 1], conv_bias=True, norm_op_kwargs={"eps": 1e-5, "affine": True},
                dropout_op_kwargs=None, nonlin_kwargs={"inplace": True})


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("slabs", [False, True])
@pytest.mark.parametrize("batch", [1, 2])  # with two, slabs of rows are strided, not contiguous
def test_matches_dynamic_network_architectures(dim, residual, slabs, batch, monkeypatch):
    """With ``slabs``, every feature map counts as large: convolutions run in place and the decoder
    upsamples slab by slab, with slabs of 1-2 rows so that every border case is crossed; instance
    statistics take the fast path for large tensors."""
    from chimerax.medseg.network import slabs as slab_module, unet as unet_module
    calls = []
    if slabs:
        monkeypatch.setattr(unet_module, "FAST_STATS_MIN_ELEMENTS", 0)
        monkeypatch.setattr(unet_module, "CHUNK_BYTES", 1)
        monkeypatch.setattr(slab_module, "SLAB_MIN_BYTES", 0)
        monkeypatch.setattr(slab_module, "SLAB_BYTES", 1)
        monkeypatch.setattr(slab_module, "RECYCLE_MIN_BYTES", 0)
        for name in ("conv_slabs", "upsample_conv_sum"):
            monkeypatch.setattr(slab_module, name, lambda *a, _f=getattr(slab_module, name), _n=name, **k:
                                calls.append(_n + (" in place" if k.get("in_place") else "")) or _f(*a, **k))
    kw = _arch_kwargs(dim)
    blocks = {"n_blocks_per_stage": [1, 2, 2]} if residual else {"n_conv_per_stage": [2, 2, 2]}
    torch.manual_seed(0)
    reference_class = ResidualEncoderUNet if residual else PlainConvUNet
    reference = reference_class(input_channels=2, num_classes=3, conv_op=nn.Conv3d if dim == 3 else nn.Conv2d,
                                norm_op=nn.InstanceNorm3d if dim == 3 else nn.InstanceNorm2d, dropout_op=None,
                                nonlin=nn.LeakyReLU, **kw, **blocks).eval()
    # random norm parameters so that a wrongly wired norm cannot go unnoticed
    with torch.no_grad():
        for name, p in reference.named_parameters():
            p.add_(torch.randn_like(p) * 0.1)
    arch = {"network_class_name": f"dynamic_network_architectures.architectures.unet.{reference_class.__name__}",
            "arch_kwargs": {**kw, **blocks, "conv_op": f"torch.nn.modules.conv.Conv{dim}d",
                            "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dim}d",
                            "dropout_op": None, "nonlin": "torch.nn.LeakyReLU"}}
    ours = build_network(arch, 2, 3).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(batch, 2, *([10, 32, 24] if dim == 3 else [32, 24]))
    with torch.no_grad():
        expected = reference(x)
        assert torch.allclose(ours(x), expected, atol=1e-5)
        with slab_module.reusing_buffers():  # the second pass runs in the first one's recycled buffers
            made = []
            for _ in range(2):
                assert torch.allclose(ours(x), expected, atol=1e-5)
                made.append(len(slab_module._recycling.storages))
            assert made[0] == made[1] and (made[0] > 0) == slabs
    if slabs:  # the slab paths really ran (residual encoders have no plain conv stacks)
        assert set(calls) == {"conv_slabs", "upsample_conv_sum"} | (set() if residual else {"conv_slabs in place"})


def test_buffers_are_recycled_only_when_nothing_uses_them(monkeypatch):
    from chimerax.medseg.network import slabs
    from chimerax.medseg.network.slabs import new_buffer, reusing_buffers
    monkeypatch.setattr(slabs, "RECYCLE_MIN_BYTES", 0)
    like = torch.empty(1, 4, 2, 3, 5).contiguous(memory_format=torch.channels_last_3d)
    shape = (1, 4, 6, 3, 5)
    with reusing_buffers():
        first = new_buffer(like, shape)
        ptr, stride = first.data_ptr(), first.stride()
        assert stride == torch.empty(shape, memory_format=torch.channels_last_3d).stride()
        view = first[:, :, 2:4]
        del first
        held = new_buffer(like, shape)  # a view still holds the first buffer: a new one
        assert held.data_ptr() != ptr
        del view, held
        again = new_buffer(like, shape)
        assert again.data_ptr() == ptr  # recycled, laid out as asked
        assert again.stride() == stride and again.shape == shape
        plain = new_buffer(like, shape, torch.contiguous_format)
        assert plain.is_contiguous() and plain.data_ptr() != again.data_ptr()
    outside = new_buffer(like, shape)  # leaving the context dropped the recycled storages
    assert outside.is_contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.parametrize("mode", ["var_mean", "sums", "sums by slab"])
@pytest.mark.parametrize("layout", ["plain", "channels_last", "2d_channels_last"])
def test_channel_mean_var_matches_double_precision(mode, layout, monkeypatch):
    """Instance statistics in either memory layout, including channels whose mean dwarfs their
    spread (cancellation); "sums by slab" gathers them from uneven slabs of rows, as slab-wise
    convolutions hand them over."""
    from chimerax.medseg.network import unet
    from chimerax.medseg.network.unet import ChannelStats, channel_mean_var
    monkeypatch.setattr(unet, "FAST_STATS_MIN_ELEMENTS", 2**40 if mode == "var_mean" else 0)
    monkeypatch.setattr(unet, "CHUNK_BYTES", 1)  # one row per chunk: partial sums are combined
    torch.manual_seed(0)
    y = torch.randn(2, 5, 64, 64) if layout.startswith("2d") else torch.randn(2, 5, 16, 64, 64)
    y[0, 1] = y[0, 1] * 1e-3 + 50.0   # mean^2 / var = 2.5e9: E[x^2] - mean^2 alone would be noise
    y[1, 2] = y[1, 2] * 3 - 7
    if layout != "plain":
        y = y.contiguous(memory_format=torch.channels_last if y.ndim == 4 else torch.channels_last_3d)
    stats = None
    if mode == "sums by slab":
        stats = ChannelStats()
        for z0, z1 in ((0, 5), (5, 6), (6, y.shape[2])):
            stats.add(y[:, :, z0:z1])
    mean, var = channel_mean_var(y, stats)
    ref_var, ref_mean = torch.var_mean(y.double(), dim=tuple(range(2, y.ndim)), keepdim=True, correction=0)
    assert mean.shape == var.shape == (2, 5) + (1,) * (y.ndim - 2)
    torch.testing.assert_close(mean.double(), ref_mean, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(var.double(), ref_var, rtol=1e-5, atol=0)


def test_unknown_layer_or_network_is_refused():
    arch = {"network_class_name": "evil.Module", "arch_kwargs": {}}
    with pytest.raises(MedSegError, match="not supported"):
        build_network(arch, 1, 2)
    kw = _arch_kwargs(3)
    arch = {"network_class_name": "PlainConvUNet",
            "arch_kwargs": {**kw, "n_conv_per_stage": 2, "conv_op": "os.system", "norm_op": None,
                            "dropout_op": None, "nonlin": None}}
    with pytest.raises(MedSegError, match="os.system"):
        build_network(arch, 1, 2)
