"""Data augmentation as nnU-Net does it, in torch (runs on the CPU in data workers or on the GPU).

TorchIO's pattern: each ``Random*`` transform only *samples* its parameters from a numpy
generator and hands them to a deterministic function (``rotate_scale``, ``gaussian_noise``,
``adjust_gamma`` ...), so every augmentation is reproducible and testable on its own. A sample's
generator is seeded from (run seed, step, index in the batch), so a batch is augmented the same
way whichever process augments it.

Tensors are one sample: data (c, *spatial) float, seg (1, *spatial) float holding label values
(-1 outside the case or its non-zero mask). Spatial dims are (z, y, x) or (y, x).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

ANISOTROPY_THRESHOLD = 3  # patch edge ratio above which 3D patches get in-plane ("dummy 2D") rotation


@dataclass
class AugmentationSettings:
    """Probabilities and ranges (nnU-Net's defaults). Override fields in a custom trainer."""

    rotation_p: float = 0.2
    rotation_degrees: tuple[float, float, float] = (30.0, 30.0, 30.0)  # per axis (z, y, x); 2D uses the first
    scaling_p: float = 0.2
    scaling_range: tuple[float, float] = (0.7, 1.4)
    elastic_p: float = 0.0      # nnU-Net v2 turns elastic deformation off; available here
    elastic_magnitude: float = 0.05   # displacement as a fraction of the patch edge
    elastic_sigma: float = 0.125      # smoothness as a fraction of the patch edge
    noise_p: float = 0.1
    noise_std: tuple[float, float] = (0.0, 0.1)
    blur_p: float = 0.2
    blur_sigma: tuple[float, float] = (0.5, 1.0)
    brightness_p: float = 0.15
    brightness_range: tuple[float, float] = (0.75, 1.25)
    contrast_p: float = 0.15
    contrast_range: tuple[float, float] = (0.75, 1.25)
    low_resolution_p: float = 0.25
    low_resolution_zoom: tuple[float, float] = (0.5, 1.0)
    gamma_inverted_p: float = 0.1
    gamma_p: float = 0.3
    gamma_range: tuple[float, float] = (0.7, 1.5)
    mirror_axes: tuple[int, ...] = (0, 1, 2)
    per_channel_p: float = 0.5  # blur and low resolution act on each channel with this probability
    dummy_2d: bool = False       # rotate/scale/deform in-plane only (thick-slice patches)
    channel_drop_p: float = 0.0  # missing-sequence robustness: zero one input channel with this probability
    # channels normalised inside their non-zero mask (the plans' use_mask_for_norm): zero again outside it
    # after augmentation, as inference sees them
    masked_channels: tuple[int, ...] = ()
    enabled: bool = True


def default_settings(patch_size: Sequence[int]) -> AugmentationSettings:
    """nnU-Net's rules for a patch: 2D rotates +-180 deg; anisotropic 3D patches use "dummy 2D"."""
    dim = len(patch_size)
    if dim == 2:
        return AugmentationSettings(rotation_degrees=(180.0, 0.0, 0.0), mirror_axes=(0, 1))
    dummy = max(patch_size) / patch_size[0] > ANISOTROPY_THRESHOLD
    if dummy:
        return AugmentationSettings(rotation_degrees=(180.0, 0.0, 0.0), dummy_2d=True)
    return AugmentationSettings()


def sample_size(patch_size: Sequence[int], settings: AugmentationSettings) -> tuple[int, ...]:
    """The patch to cut before the spatial transform, big enough that rotating and zooming out
    never reaches outside it (then cropped back to ``patch_size``). Edges stay patch + even."""
    size = np.asarray(patch_size, dtype=float)
    if not settings.enabled or (settings.rotation_p == 0 and settings.scaling_p == 0 and settings.elastic_p == 0):
        return tuple(int(s) for s in patch_size)
    inplane = size[-2:] if (len(size) == 2 or settings.dummy_2d) else size
    angles = [min(math.radians(a), math.pi / 2) for a in settings.rotation_degrees]
    if len(inplane) == 2:
        corners = _rotated_extent(inplane, _rotation_2d(angles[0]))
    else:
        corners = inplane
        for axis, angle in enumerate(angles):
            corners = np.maximum(corners, _rotated_extent(inplane, _rotation_3d(axis, angle)))
    grown = corners / 0.85  # nnU-Net's margin for scaling
    new = size.copy()
    new[-len(grown):] = np.maximum(grown, size[-len(grown):])
    new = np.ceil(new).astype(int)
    new += (new - np.asarray(patch_size)) % 2  # keep the surplus even so the centre crop is exact
    return tuple(int(s) for s in new)


def _rotated_extent(size: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    half = size / 2
    signs = np.array(np.meshgrid(*[[-1, 1]] * len(size), indexing="ij")).reshape(len(size), -1).T
    return 2 * np.abs((signs * half) @ matrix.T).max(axis=0)


def _rotation_2d(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _rotation_3d(axis: int, angle: float) -> np.ndarray:
    m = np.eye(3)
    a, b = [i for i in range(3) if i != axis]
    c, s = math.cos(angle), math.sin(angle)
    m[a, a], m[a, b], m[b, a], m[b, b] = c, -s, s, c
    return m


# ---------------------------------------------------------------- deterministic functions

def center_crop(x, size: Sequence[int]):
    starts = [(n - s) // 2 for n, s in zip(x.shape[1:], size)]
    return x[(slice(None),) + tuple(slice(a, a + s) for a, s in zip(starts, size))]


def rotate_scale(data, seg, matrix: np.ndarray, out_size: Sequence[int], displacement=None):
    """Resample data (linear) and seg (nearest) at ``matrix @ offset`` around the centre.

    Args:
        matrix: (d, d) voxel-space matrix mapping output offsets from the centre to input offsets.
        out_size: the output patch size.
        displacement: optional (d, *out_size) extra input offsets in voxels (elastic deformation).
    """
    import torch
    import torch.nn.functional as F
    dim = len(out_size)
    device = data.device
    axes = [torch.arange(n, device=device, dtype=torch.float32) - (n - 1) / 2 for n in out_size]
    offsets = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0).reshape(dim, -1)
    coords = torch.as_tensor(matrix, dtype=torch.float32, device=device) @ offsets
    if displacement is not None:
        coords = coords + displacement.reshape(dim, -1)
    in_size = data.shape[1:]
    for d in range(dim):
        coords[d] = (coords[d] + (in_size[d] - 1) / 2) * (2 / max(in_size[d] - 1, 1)) - 1
    grid = coords.flip(0).T.reshape(1, *out_size, dim)  # grid_sample wants (x, y, z) order
    out = F.grid_sample(data[None].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
    # shifted by one so that grid_sample's zero padding means -1, "outside the case"
    out_seg = F.grid_sample(seg[None].float() + 1, grid, mode="nearest", padding_mode="zeros", align_corners=True)[0]
    return out, out_seg - 1


def gaussian_noise(x, std: float, generator):
    import torch
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device)
    return x + noise * std


def _gaussian_kernel(sigma: float):
    import torch
    radius = max(int(math.ceil(3 * sigma)), 1)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x, sigmas: Sequence[float]):
    """Separable Gaussian blur of one channel-first tensor; sigma per spatial axis in voxels (0 = none)."""
    import torch.nn.functional as F
    dim = x.ndim - 1
    out = x[None].float()
    for axis, sigma in enumerate(sigmas):
        if sigma <= 0:
            continue
        k = _gaussian_kernel(sigma).to(x.device)
        shape = [1] * dim
        shape[axis] = len(k)
        weight = k.reshape(1, 1, *shape).repeat(x.shape[0], 1, *[1] * dim)
        pad = [0, 0] * dim
        pad[2 * (dim - 1 - axis)] = pad[2 * (dim - 1 - axis) + 1] = len(k) // 2
        conv = F.conv3d if dim == 3 else F.conv2d
        out = conv(F.pad(out, pad, mode="replicate"), weight, groups=x.shape[0])
    return out[0]


def multiply_brightness(x, factor: float):
    return x * factor


def adjust_contrast(x, factor: float, preserve_range: bool = True):
    mean = x.mean()
    out = (x - mean) * factor + mean
    return out.clamp(x.min(), x.max()) if preserve_range else out


def simulate_low_resolution(x, zoom: float, ignore_axes: Sequence[int] = ()):
    """Downsample (nearest) by ``zoom`` and back up (linear): the look of a coarser scan."""
    import torch.nn.functional as F
    shape = x.shape[1:]
    small = [n if a in ignore_axes else max(int(round(n * zoom)), 1) for a, n in enumerate(shape)]
    down = F.interpolate(x[None], size=small, mode="nearest")
    mode = "trilinear" if len(shape) == 3 else "bilinear"
    return F.interpolate(down, size=list(shape), mode=mode, align_corners=False)[0]


def adjust_gamma(x, gamma: float, invert: bool = False, retain_stats: bool = True, eps: float = 1e-7):
    """Gamma on the intensities rescaled to [0, 1]; ``invert`` applies it to the negated image."""
    if invert:
        x = -x
    mean, std = x.mean(), x.std()
    low, high = x.min(), x.max()
    span = high - low
    out = ((x - low) / (span + eps)).pow(gamma) * (span + eps) + low
    if retain_stats:
        out = (out - out.mean()) / (out.std() + 1e-8) * std + mean
    return -out if invert else out


def mirror(x, axes: Sequence[int]):
    """Flip along spatial ``axes`` (0 = first spatial axis)."""
    return x.flip([a + 1 for a in axes]) if axes else x


def drop_channel(x, channel: int):
    out = x.clone()
    out[channel] = 0
    return out


# ---------------------------------------------------------------- random transforms

@dataclass
class Augmenter:
    """Samples and applies nnU-Net's augmentation pipeline to one sample at a time."""

    patch_size: tuple[int, ...]
    settings: AugmentationSettings = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.patch_size = tuple(int(s) for s in self.patch_size)
        if self.settings is None:
            self.settings = default_settings(self.patch_size)

    @property
    def sample_size(self) -> tuple[int, ...]:
        return sample_size(self.patch_size, self.settings)

    def sample_parameters(self, rng: np.random.Generator, channels: int) -> dict:
        """Every random choice for one sample, as plain numbers (reproducible, loggable)."""
        s = self.settings
        dim = len(self.patch_size)
        p: dict = {"noise_seed": int(rng.integers(2 ** 31))}
        inplane = dim == 2 or s.dummy_2d
        if rng.uniform() < s.rotation_p:
            if inplane:
                p["angles"] = [float(rng.uniform(-1, 1) * math.radians(s.rotation_degrees[0]))]
            else:
                p["angles"] = [float(rng.uniform(-1, 1) * math.radians(a)) for a in s.rotation_degrees]
        if rng.uniform() < s.scaling_p:
            p["scale"] = float(rng.uniform(*s.scaling_range))
        if rng.uniform() < s.elastic_p:
            p["elastic_seed"] = int(rng.integers(2 ** 31))
        if rng.uniform() < s.noise_p:
            p["noise_std"] = float(rng.uniform(*s.noise_std))
        if rng.uniform() < s.blur_p:
            p["blur"] = [[float(rng.uniform(*s.blur_sigma)) for _ in range(dim)] if rng.uniform() < s.per_channel_p
                         else None for _ in range(channels)]
        if rng.uniform() < s.brightness_p:
            p["brightness"] = [float(rng.uniform(*s.brightness_range)) for _ in range(channels)]
        if rng.uniform() < s.contrast_p:
            p["contrast"] = [float(rng.uniform(*s.contrast_range)) for _ in range(channels)]
        if rng.uniform() < s.low_resolution_p:
            p["low_resolution"] = [float(rng.uniform(*s.low_resolution_zoom)) if rng.uniform() < s.per_channel_p
                                   else None for _ in range(channels)]
        for key, prob in (("gamma_inverted", s.gamma_inverted_p), ("gamma", s.gamma_p)):
            if rng.uniform() < prob:
                p[key] = [_sample_gamma(rng, s.gamma_range) for _ in range(channels)]
        p["mirror"] = [int(a) for a in s.mirror_axes if a < dim and rng.uniform() < 0.5]
        if channels > 1 and rng.uniform() < s.channel_drop_p:
            p["drop_channel"] = int(rng.integers(channels))
        return p

    def spatial_matrix(self, params: dict) -> np.ndarray | None:
        dim = len(self.patch_size)
        if "angles" not in params and "scale" not in params:
            return None
        m = np.eye(dim)
        inplane_axes = [dim - 2, dim - 1]
        if "angles" in params:
            if len(params["angles"]) == 1:
                m[np.ix_(inplane_axes, inplane_axes)] = _rotation_2d(params["angles"][0])
            else:
                for axis, angle in enumerate(params["angles"]):
                    m = _rotation_3d(axis, angle) @ m
        if "scale" in params:
            scale = np.full(dim, params["scale"])
            if self.settings.dummy_2d:
                scale[0] = 1.0
            m = m @ np.diag(scale)
        return m

    def apply(self, data, seg, params: dict):
        """The deterministic part: data (c, *sample_size), seg (1, *sample_size) -> patch-sized tensors."""
        import torch
        matrix = self.spatial_matrix(params)
        displacement = self._displacement(params, data.device) if "elastic_seed" in params else None
        if matrix is None and displacement is None:
            data, seg = center_crop(data, self.patch_size), center_crop(seg, self.patch_size)
        else:
            matrix = np.eye(len(self.patch_size)) if matrix is None else matrix
            data, seg = rotate_scale(data, seg, matrix, self.patch_size, displacement)
        data = data.float()
        generator = torch.Generator().manual_seed(params["noise_seed"])
        if "noise_std" in params:
            data = gaussian_noise(data, params["noise_std"], generator)
        channels = []
        ignore = (0,) if self.settings.dummy_2d else ()
        for c in range(data.shape[0]):
            x = data[c:c + 1]
            if params.get("blur") and params["blur"][c] is not None:
                sigmas = list(params["blur"][c])
                if self.settings.dummy_2d:
                    sigmas[0] = 0.0
                x = gaussian_blur(x, sigmas)
            if "brightness" in params:
                x = multiply_brightness(x, params["brightness"][c])
            if "contrast" in params:
                x = adjust_contrast(x, params["contrast"][c])
            if params.get("low_resolution") and params["low_resolution"][c] is not None:
                x = simulate_low_resolution(x, params["low_resolution"][c], ignore)
            if "gamma_inverted" in params:
                x = adjust_gamma(x, params["gamma_inverted"][c], invert=True)
            if "gamma" in params:
                x = adjust_gamma(x, params["gamma"][c], invert=False)
            channels.append(x)
        data = torch.cat(channels, 0)
        data, seg = mirror(data, params["mirror"]), mirror(seg, params["mirror"])
        if self.settings.masked_channels:
            outside = seg[0] < 0
            for c in self.settings.masked_channels:
                data[c].masked_fill_(outside, 0)
        if "drop_channel" in params:
            data = drop_channel(data, params["drop_channel"])
        return data, seg

    def _displacement(self, params: dict, device):
        import torch
        s = self.settings
        size = self.patch_size
        generator = torch.Generator().manual_seed(params["elastic_seed"])
        fields = []
        for axis in range(len(size)):
            if s.dummy_2d and axis == 0:
                fields.append(torch.zeros(size))
                continue
            noise = torch.randn((1, *size), generator=generator)
            smooth = gaussian_blur(noise, [max(s.elastic_sigma * n, 0.5) for n in size])[0]
            smooth = smooth / (smooth.abs().max() + 1e-8)
            fields.append(smooth * s.elastic_magnitude * size[axis])
        return torch.stack(fields).to(device)

    def __call__(self, data, seg, rng: np.random.Generator):
        """Sample parameters with ``rng`` and apply them (no augmentation: just the centre crop)."""
        if not self.settings.enabled:
            return center_crop(data, self.patch_size).float(), center_crop(seg, self.patch_size)
        params = self.sample_parameters(rng, data.shape[0])
        return self.apply(data, seg, params)

    def with_settings(self, **changes) -> Augmenter:
        return Augmenter(self.patch_size, replace(self.settings, **changes))


def _sample_gamma(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """Half the time below 1, half above (as nnU-Net), so darkening and brightening are equally likely."""
    low, high = bounds
    if low < 1 and rng.uniform() < 0.5:
        return float(rng.uniform(low, 1))
    return float(rng.uniform(max(low, 1), high))
