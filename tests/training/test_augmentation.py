"""Augmentation: each deterministic function on its own, the random ones reproducible, nnU-Net's rules."""
import numpy as np
import pytest
import torch

from chimerax.medseg.training.augmentation import (Augmenter, adjust_contrast, adjust_gamma, center_crop,
                                                   default_settings, gaussian_blur, gaussian_noise, mirror,
                                                   rotate_scale, sample_size, simulate_low_resolution)


def _volume(shape=(1, 10, 12, 12), seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def test_identity_transform_is_the_centre_crop():
    data = _volume((2, 14, 16, 16))
    seg = torch.randint(0, 3, (1, 14, 16, 16)).float()
    out, out_seg = rotate_scale(data, seg, np.eye(3), (10, 12, 12))
    torch.testing.assert_close(out, center_crop(data, (10, 12, 12)), atol=1e-5, rtol=0)
    assert torch.equal(out_seg, center_crop(seg, (10, 12, 12)))


def test_quarter_turn_in_plane_equals_rot90():
    seg = torch.randint(0, 3, (1, 4, 9, 9)).float()
    matrix = np.eye(3)
    matrix[1:, 1:] = [[0, -1], [1, 0]]
    _, rotated = rotate_scale(seg, seg, matrix, (4, 9, 9))
    expected = torch.rot90(seg, 1, dims=(2, 3))
    assert torch.equal(rotated, expected) or torch.equal(rotated, torch.rot90(seg, -1, dims=(2, 3)))


def test_zooming_out_shrinks_a_structure():
    seg = torch.zeros(1, 21, 21, 21)
    seg[:, 6:15, 6:15, 6:15] = 1
    _, out = rotate_scale(seg, seg, np.eye(3) * 1.4, (21, 21, 21))  # sample a 1.4x larger region
    assert 0 < (out == 1).sum() < seg.sum()


def test_intensity_functions():
    x = _volume()
    torch.testing.assert_close(mirror(mirror(x, [0, 2]), [0, 2]), x)
    assert torch.equal(mirror(x, [1])[:, :, 0], x[:, :, -1])
    g = adjust_gamma(x, 1.4, retain_stats=True)
    assert float(g.mean()) == pytest.approx(float(x.mean()), abs=1e-4)
    assert float(g.std()) == pytest.approx(float(x.std()), rel=1e-3)
    assert not torch.allclose(g, x)
    torch.testing.assert_close(adjust_gamma(x, 1.0, invert=True), x, atol=1e-4, rtol=0)
    c = adjust_contrast(x, 1.25)
    assert float(c.min()) >= float(x.min()) and float(c.max()) <= float(x.max())
    torch.testing.assert_close(simulate_low_resolution(x, 1.0), x)
    low = simulate_low_resolution(x, 0.5)
    assert low.shape == x.shape and float((low - x).abs().mean()) > 0.1
    flat = torch.full((1, 8, 8, 8), 3.0)
    torch.testing.assert_close(gaussian_blur(flat, [1.0, 1.0, 1.0]), flat)
    assert float(gaussian_blur(x, [1.0, 1.0, 1.0]).std()) < float(x.std())
    a = gaussian_noise(x, 0.1, torch.Generator().manual_seed(4))
    b = gaussian_noise(x, 0.1, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and float((a - x).std()) == pytest.approx(0.1, rel=0.2)


def test_nnunet_rules_dummy_2d_and_sample_size():
    assert not default_settings((64, 64, 64)).dummy_2d
    thick = default_settings((8, 64, 64))  # 64 / 8 > 3: in-plane rotation by up to 180 degrees
    assert thick.dummy_2d and thick.rotation_degrees[0] == 180
    aug = Augmenter((8, 64, 64))
    matrix = aug.spatial_matrix({"angles": [0.7], "scale": 1.2})
    assert matrix[0].tolist() == [1, 0, 0] and matrix[:, 0].tolist() == [1, 0, 0]
    for patch in ((16, 16, 16), (8, 64, 64), (48, 40)):
        size = sample_size(patch, default_settings(patch))
        assert all(s >= p and (s - p) % 2 == 0 for s, p in zip(size, patch))
    assert sample_size((16, 16, 16), default_settings((16, 16, 16)))[0] > 16


def test_random_augmentation_is_reproducible_and_varies():
    aug = Augmenter((12, 12, 12))
    size = aug.sample_size
    data, seg = _volume((2, *size)), torch.randint(0, 3, (1, *size)).float()
    first = aug(data, seg, np.random.default_rng(5))
    again = aug(data, seg, np.random.default_rng(5))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert first[0].shape == (2, 12, 12, 12) and first[1].shape == (1, 12, 12, 12)
    outputs = [aug(data, seg, np.random.default_rng(s))[0] for s in range(6)]
    assert any(not torch.equal(outputs[0], o) for o in outputs[1:])
    params = [aug.sample_parameters(np.random.default_rng(s), 2) for s in range(400)]
    rotated = sum("angles" in p for p in params) / len(params)
    assert rotated == pytest.approx(0.2, abs=0.06)  # nnU-Net's rotation probability
    assert all(0.7 <= p["scale"] <= 1.4 for p in params if "scale" in p)


def test_channel_drop_zeroes_one_channel():
    aug = Augmenter((8, 8, 8)).with_settings(channel_drop_p=1.0, rotation_p=0, scaling_p=0, noise_p=0, blur_p=0,
                                             brightness_p=0, contrast_p=0, low_resolution_p=0, gamma_p=0,
                                             gamma_inverted_p=0)
    data = _volume((3, 8, 8, 8)) + 5
    out, _ = aug(data, torch.zeros(1, 8, 8, 8), np.random.default_rng(1))
    zero = [bool((out[c] == 0).all()) for c in range(3)]
    assert sum(zero) == 1


def test_2d_patches_are_augmented_in_the_plane():
    aug = Augmenter((16, 16))
    assert aug.settings.rotation_degrees[0] == 180 and aug.settings.mirror_axes == (0, 1)
    size = aug.sample_size
    data, seg = _volume((2, *size)), torch.randint(0, 3, (1, *size)).float()
    for seed in range(12):
        out, out_seg = aug(data, seg, np.random.default_rng(seed))
        assert out.shape == (2, 16, 16) and out_seg.shape == (1, 16, 16)
        assert set(out_seg.unique().tolist()) <= {-1.0, 0.0, 1.0, 2.0}  # -1: beyond the sample


def test_masked_channels_stay_zero_outside_the_mask_after_augmentation():
    """nnU-Net's MaskImageTransform: channels normalised inside their non-zero mask are zero again
    outside it (seg -1), whatever noise, contrast, gamma or rotation did; other channels are not."""
    aug = Augmenter((10, 12, 12)).with_settings(rotation_p=1, noise_p=1, contrast_p=1, gamma_p=1,
                                                masked_channels=(0,))
    size = aug.sample_size
    data = _volume((2, *size)) + 3
    seg = torch.full((1, *size), -1.0)
    seg[:, 4:-4, 5:-5, 5:-5] = torch.randint(0, 3, seg[:, 4:-4, 5:-5, 5:-5].shape).float()
    for s in range(4):
        out, out_seg = aug(data, seg, np.random.default_rng(s))
        outside = out_seg[0] < 0
        assert outside.any() and (~outside).any()
        assert (out[0][outside] == 0).all() and (out[0][~outside] != 0).all()
        assert (out[1][outside] != 0).any()


def test_rotation_pads_the_label_map_with_outside():
    seg = torch.ones(1, 6, 9, 9)
    matrix = np.eye(3) * 1.4  # sample beyond the input: those voxels are outside the case (-1), not background
    _, out = rotate_scale(seg, seg, matrix, (6, 9, 9))
    assert set(out.unique().tolist()) == {-1.0, 1.0}
