"""nnU-Net's preprocessing: transpose, crop to non-zero, normalize, resample (invertible)."""
