"""The widths of nnU-Net v1's Generic_UNet (torch-free: the plans' bounds are checked before torch loads)."""
from __future__ import annotations

MAX_FEATURES = {3: 320, 2: 480}


def generic_unet_features(base: int, num_stages: int, dim: int) -> list[int]:
    """Features per stage: doubling (rounded) from ``base``, capped as Generic_UNet caps them."""
    features, current = [], int(base)
    for _ in range(num_stages):
        features.append(min(current, MAX_FEATURES[dim]))
        current = min(int(round(current * 2)), MAX_FEATURES[dim])
    return features
