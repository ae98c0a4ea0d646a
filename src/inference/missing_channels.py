"""Missing-sequence robustness: which models may run with an input channel absent.

A model trained with ``--channel-dropout`` saw samples with one channel zeroed (after
normalisation) and records that in its checkpoints (``medseg.missing_channels_trained``). Only
such models should accept an image lacking a channel; the channel is then zero-filled after
normalisation, and the user is warned.
"""
from __future__ import annotations

from collections.abc import Sequence

from ..errors import MedSegError


def allows_missing_channels(checkpoint: dict) -> bool:
    return bool((checkpoint.get("medseg") or {}).get("missing_channels_trained", False))


def check_missing_channels(missing: Sequence[str], allowed: bool) -> str:
    """The warning to show when channels are absent, or an error for models not trained for it."""
    if not missing:
        return ""
    if not allowed:
        raise MedSegError(f"The input lacks channel(s) {', '.join(missing)} and this model was not trained to work "
                          "without them. Provide every channel, or train with --channel-dropout.")
    return (f"Channel(s) {', '.join(missing)} are missing; they are filled with zeros. This model was trained for "
            "that, but expect lower accuracy.")


def zero_channels(data, channels: Sequence[int]):
    """Zero the given channels of preprocessed (normalised) data (c, ...), as training did."""
    out = data.copy() if hasattr(data, "copy") else data.clone()
    for c in channels:
        out[c] = 0
    return out
