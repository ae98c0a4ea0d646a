"""Adaptive ensembling's criterion and exactness, with a real (tiny, hand-set) network: a tile whose
first pass is uncertain gets every fold and mirroring, a certain one keeps its single pass."""
from __future__ import annotations

import pytest
import torch

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.inference.adaptive import adaptive_logits, uncertain_voxels
from chimerax.medseg.inference.options import PredictOptions
from chimerax.medseg.inference.sliding_window import SlidingWindow, mirror_combinations


class Ramp(torch.nn.Module):
    """Two-class logits from the intensity: background below ``centre``, foreground above; the
    ``tilt`` makes mirrored passes differ (so the ensemble differs from the first pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(20.0))
        self.tilt = torch.nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(-1, 1, x.shape[-1]).expand_as(x)
        fg = self.scale * (x - 0.5) + self.tilt * ramp
        return torch.cat([torch.zeros_like(fg), fg], dim=1)


FOLDS = [{"scale": torch.tensor(20.0), "tilt": torch.tensor(1.5)}, {"scale": torch.tensor(12.0), "tilt": torch.tensor(-2.0)}]


def _image() -> torch.Tensor:
    """(1, 16, 16, 96): clearly background, a band just above 0.5 (in doubt), then clearly foreground."""
    data = torch.zeros(1, 16, 16, 96)
    data[..., 40:56] = 0.52  # the ensemble says foreground; single tilted passes disagree
    data[..., 56:] = 1.0
    return data


def _run(adaptive: bool, threshold: float = 0.5):
    net = Ramp().eval()
    window = SlidingWindow(net, (16, 16, 16), 2, step=0.5, mirror_axes=(0, 1, 2), accumulate_dtype="float32")
    load = lambda weights: net.load_state_dict(weights)  # noqa: E731
    with torch.inference_mode():
        if adaptive:
            return adaptive_logits(window, _image(), FOLDS, load, threshold, region_based=False)
        total = 0
        for weights in FOLDS:
            load(weights)
            total = total + window(_image())
        return total / len(FOLDS), None


def test_uncertain_tiles_get_every_pass_certain_ones_one():
    logits, passes = _run(adaptive=True)
    combos = len(mirror_combinations((0, 1, 2)))
    tiles = 11  # 96 along x with 16-voxel tiles at step 0.5; one tile along y and z
    assert passes.tiles == tiles and passes.full == tiles * combos * len(FOLDS)
    # the band (x 40..55) in doubt: the tiles overlapping it are the ones starting at 32, 40 and 48
    assert passes.marked == 3 and passes.run == tiles + 3 * combos * len(FOLDS)
    full, _ = _run(adaptive=False)
    # exact where every tile covering a voxel got every pass (x 40..55 lie only in marked tiles)
    torch.testing.assert_close(logits[..., 40:56], full[..., 40:56], atol=1e-4, rtol=1e-4)
    # elsewhere the single first pass stands (same labels here, other values: the ensemble differs)
    assert not torch.allclose(logits[..., :24], full[..., :24], atol=1e-3)
    assert torch.equal(logits.argmax(0), full.argmax(0))


def test_a_higher_threshold_marks_more_up_to_every_tile():
    _, strict = _run(adaptive=True, threshold=0.999999)  # |logit| < 14.5 counts as doubt: everywhere here
    _, loose = _run(adaptive=True, threshold=0.5)
    assert strict.marked == strict.tiles > loose.marked
    assert strict.run == strict.full + strict.tiles  # every tile: its first pass, then all passes again


def test_margin_criterion_for_softmax_and_regions():
    logits = torch.tensor([[0.0, 0.0, 5.0], [0.1, 3.0, 0.0]])[:, :, None]  # (C=2, 3 voxels, 1)
    assert uncertain_voxels(logits, 0.5, region_based=False)[:, 0].tolist() == [True, False, False]
    regions = torch.tensor([[4.0, 0.1], [-4.0, -4.0]])[:, :, None]  # two regions, two voxels
    assert uncertain_voxels(regions, 0.5, region_based=True)[:, 0].tolist() == [False, True]


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.2, 1.5])
def test_threshold_outside_its_range_is_refused(threshold):
    with pytest.raises(MedSegError, match="adaptive threshold must be in"):
        PredictOptions(adaptive=True, adaptive_threshold=threshold).validate()
