"""Our feature-map estimate equals dynamic_network_architectures' compute_conv_feature_map_size."""
from __future__ import annotations

import pytest

from chimerax.medseg.planning.vram import estimate_feature_map_size

CASES = [
    ((128, 128, 128), [32, 64, 128, 256, 320, 320], [[1, 1, 1]] + [[2, 2, 2]] * 5, 3),
    ((20, 192, 160), [32, 64, 128, 256, 320, 320, 320], [[1, 1, 1], [1, 2, 2], [1, 2, 2], [2, 2, 2], [2, 2, 2],
                                                         [1, 2, 2], [1, 2, 2]], 4),
    ((512, 448), [32, 64, 128, 256, 512, 512, 512, 512], [[1, 1]] + [[2, 2]] * 7, 2),
]


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("patch,features,strides,classes", CASES)
def test_estimate_matches_the_real_architecture(patch, features, strides, classes, residual):
    from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet
    from torch import nn
    n = len(features)
    dim = len(patch)
    conv, norm = (nn.Conv3d, nn.InstanceNorm3d) if dim == 3 else (nn.Conv2d, nn.InstanceNorm2d)
    common = dict(input_channels=2, n_stages=n, features_per_stage=features, conv_op=conv, kernel_sizes=3,
                  strides=strides, num_classes=classes, conv_bias=True, norm_op=norm, nonlin=nn.LeakyReLU)
    if residual:
        blocks, decoder = [1, 3, 4, 6, 6, 6, 6, 6][:n], [1] * (n - 1)
        net = ResidualEncoderUNet(n_blocks_per_stage=blocks, n_conv_per_stage_decoder=decoder, **common)
    else:
        blocks, decoder = [2] * n, [2] * (n - 1)
        net = PlainConvUNet(n_conv_per_stage=blocks, n_conv_per_stage_decoder=decoder, **common)
    expected = int(net.compute_conv_feature_map_size(patch))
    assert estimate_feature_map_size(patch, features, strides, blocks, decoder, classes, residual) == expected
