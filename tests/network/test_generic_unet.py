"""nnU-Net v1's Generic_UNet: v1's state-dict keys, and the fast CPU path equal to the plain layers."""
from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import pytest
import torch

from chimerax.medseg.models.checkpoint import load_checkpoint
from chimerax.medseg.models.v1_checkpoint import expected_shapes
from chimerax.medseg.models.v1_folder import open_v1_folder
from chimerax.medseg.network.build import build_network

DATA = Path(__file__).resolve().parent.parent / "data" / "nnunet_v1"


def _arch(dim: int, norm: str) -> dict:
    kernels = [[1, 3, 3], [3, 3, 3], [3, 3, 3]] if dim == 3 else [[3, 3]] * 3
    pools = [[1, 2, 2], [2, 2, 2]] if dim == 3 else [[2, 2], [2, 2]]
    return {"network_class_name": "Generic_UNet", "arch_kwargs": {
        "conv_op": f"torch.nn.Conv{dim}d", "norm_op": f"torch.nn.{norm}{dim}d",
        "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"negative_slope": 1e-2, "inplace": True},
        "base_num_features": 4, "conv_kernel_sizes": kernels, "pool_op_kernel_sizes": pools, "conv_per_stage": 2}}


@pytest.mark.parametrize("task", ["Task901_V1BraTS", "Task902_V1MRI", "Task903_V1CT"])
def test_keys_and_shapes_are_those_of_v1s_own_checkpoints(task):
    """The weights nnunet 1.7.1's trainers saved: every key and shape of the network our plans reading builds."""
    with tempfile.TemporaryDirectory() as tmp:
        zipfile.ZipFile(DATA / f"{task}.zip").extractall(tmp)
        folder = open_v1_folder(Path(tmp))
        weights = load_checkpoint(folder.checkpoint_path("0"))["network_weights"]
        assert {k: tuple(v.shape) for k, v in weights.items()} == expected_shapes(folder)
    assert any(k.startswith("conv_blocks_localization.0.1.blocks.0.") for k in weights)
    assert not any(k.startswith("tu.") and k.endswith("bias") for k in weights)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("norm", ["BatchNorm", "InstanceNorm"])
@pytest.mark.parametrize("slabs", [False, True])
def test_fast_inference_equals_the_plain_layers(dim, norm, slabs, monkeypatch):
    """Batch norms with their stored statistics, or instance norms, fused into the conv outputs."""
    from chimerax.medseg.network import slabs as slab_module, unet as unet_module
    if slabs:  # every map counts as large: slab-wise convolutions and upsampling run too
        monkeypatch.setattr(unet_module, "CHUNK_BYTES", 1)
        monkeypatch.setattr(slab_module, "SLAB_MIN_BYTES", 0)
        monkeypatch.setattr(slab_module, "SLAB_BYTES", 1)
    torch.manual_seed(0)
    net = build_network(_arch(dim, norm), 2, 3)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5 if "running_var" in name else torch.randn_like(tensor) * 0.3)
    net.eval()
    x = torch.randn(1, 2, *([6, 20, 16] if dim == 3 else [20, 16]))
    with torch.enable_grad():  # the plain module path (the fast path runs only without gradients)
        expected = net(x).detach()
    fused = []
    original = unet_module.ConvNormAct.norm_act_in_place
    monkeypatch.setattr(unet_module.ConvNormAct, "norm_act_in_place",
                        lambda self, *a, **k: fused.append(1) or original(self, *a, **k))
    with torch.inference_mode():
        fast = net(x)
    assert fused  # the fused path really ran
    assert torch.allclose(fast, expected, atol=1e-4), (fast - expected).abs().max()
