"""Models: nnU-Net v2 model folders, safe checkpoint loading, the manifest, cache and downloads."""
