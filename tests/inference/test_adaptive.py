"""Adaptive ensembling's criterion and exactness, with a real (tiny, hand-set) network: a tile whose
passes are uncertain gets its next stage (each fold's mirrorings doubled) up to every fold and mirroring;
a certain one keeps its survey (one pass per fold; two for a one-fold model); one whose mirrorings agree
stops as soon as its spread within folds shows it."""
from __future__ import annotations

import pytest
import torch

from chimerax.medseg.cli import main
from chimerax.medseg.errors import MedSegError
from chimerax.medseg.images import read_case
from chimerax.medseg.inference.adaptive import (
    adaptive_logits,
    confidence,
    doubt_answered,
    mirroring_orders,
    needs_more,
    stages,
)
from chimerax.medseg.inference.options import PredictOptions
from chimerax.medseg.inference.predictor import Predictor
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
        across = torch.linspace(-1, 1, x.shape[-2])[:, None].expand_as(x)
        fg = self.scale * (x - 0.5) + self.tilt * ramp * (1 + across)  # each axis' mirroring and both together
        return torch.cat([torch.zeros_like(fg), fg], dim=1)


FOLDS = [{"scale": torch.tensor(20.0), "tilt": torch.tensor(1.5)},
         {"scale": torch.tensor(12.0), "tilt": torch.tensor(-2.0)}]


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


def test_uncertain_tiles_get_every_pass_certain_ones_their_survey():
    logits, passes = _run(adaptive=True)
    combos = len(mirror_combinations((0, 1, 2)))
    tiles = 11  # 96 along x with 16-voxel tiles at step 0.5; one tile along y and z
    assert passes.tiles == tiles and passes.full == tiles * combos * len(FOLDS)
    # the band (x 40..55) in doubt: the tiles overlapping it are the ones starting at 32, 40 and 48
    survey = tiles * len(FOLDS)  # one pass per fold on every tile
    assert passes.marked == 3 and passes.run == survey + 3 * (combos * len(FOLDS) - len(FOLDS))  # survey kept
    assert str(passes).endswith("of 11 tiles, 8 ran 1 of 8 mirrorings per fold, 3 ran all 8")
    full, _ = _run(adaptive=False)
    # exact where every tile covering a voxel got every pass (x 40..55 lie only in marked tiles)
    torch.testing.assert_close(logits[..., 40:56], full[..., 40:56], atol=1e-4, rtol=1e-4)
    # elsewhere the survey stands (same labels here, other values: the ensemble differs)
    assert not torch.allclose(logits[..., :24], full[..., :24], atol=1e-3)
    assert torch.equal(logits.argmax(0), full.argmax(0))


def test_a_one_fold_model_surveys_with_two_passes():
    net = Ramp().eval()
    window = SlidingWindow(net, (16, 16, 16), 2, step=0.5, mirror_axes=(0, 1, 2), accumulate_dtype="float32")
    with torch.inference_mode():
        _, passes = adaptive_logits(window, _image(), FOLDS[:1], net.load_state_dict, 0.5, region_based=False)
    assert passes.marked == 3 and passes.run == 2 * passes.tiles + 3 * (len(mirror_combinations((0, 1, 2))) - 2)


def test_an_image_without_doubt_costs_only_the_survey():
    net = Ramp().eval()
    window = SlidingWindow(net, (16, 16, 16), 2, step=0.5, mirror_axes=(0, 1, 2), accumulate_dtype="float32")
    certain = torch.zeros(1, 16, 16, 48)  # background everywhere, far from the decision
    with torch.inference_mode():
        logits, passes = adaptive_logits(window, certain, FOLDS, net.load_state_dict, 0.5, region_based=False)
    assert passes.marked == 0 and passes.run == passes.tiles * len(FOLDS)
    assert bool((logits.argmax(0) == 0).all())


def test_passes_that_agree_on_a_small_margin_spare_the_tile():
    """The band's margin is small (the old rule, a top-two margin below 0.5, marked its tiles), but where the
    survey's passes agree closely their spread says more passes cannot flip it: no tile gets them."""
    agree = [{"scale": torch.tensor(20.0), "tilt": torch.tensor(0.01)},
             {"scale": torch.tensor(20.5), "tilt": torch.tensor(-0.01)}]
    net = Ramp().eval()
    window = SlidingWindow(net, (16, 16, 16), 2, step=0.5, mirror_axes=(0, 1, 2), accumulate_dtype="float32")
    with torch.inference_mode():
        logits, several = adaptive_logits(window, _image(), agree, net.load_state_dict, 0.5, region_based=False)
        _, one = adaptive_logits(window, _image(), agree[:1], net.load_state_dict, 0.5, region_based=False)
    top = torch.softmax(logits, 0).max(0).values
    assert bool((2 * top - 1 < 0.5)[..., 40:56].all())  # the band's margin
    assert several.marked == 0 and several.run == several.tiles * len(agree)
    assert one.marked == 0 and one.run == 2 * one.tiles


def test_confidence_is_students_t_on_the_margin():
    """Two folds, two mirrorings: the full mean can move s * sqrt(1/4) from the survey's, and t with one degree
    of freedom is Cauchy's, so confidence = 2 atan(|m| / (s / 2)) / pi (per region; the least counts)."""
    mean = torch.tensor([[0.3, -0.3, 2.0], [1.0, 1.0, 1.0]])[..., None]  # (2 regions, 3 voxels, 1)
    sd = torch.tensor([[0.2, 0.6, 0.0], [0.1, 0.1, 0.1]])[..., None]  # per region and voxel
    got = confidence(mean, sd, per_fold=1, folds=2, mirrorings=2, region_based=True)[:, 0]
    z = mean.abs() / (sd / 2)
    expected = (2 * torch.atan(z) / torch.pi).amin(dim=0)[:, 0]
    torch.testing.assert_close(got, expected)
    alone = confidence(mean[:1], sd[:1], per_fold=1, folds=2, mirrorings=2, region_based=True)[:, 0]
    assert alone[2] == 1 and got[2] < 1  # passes that agree exactly are certain; the other region decides


def test_confidence_for_softmax_bounds_the_difference():
    mean = torch.tensor([[2.0, 0.0], [1.5, 0.1], [-3.0, 0.0]])[..., None]  # (3 classes, 2 voxels, 1)
    got = confidence(mean, torch.ones_like(mean), per_fold=1, folds=2, mirrorings=2, region_based=False)[:, 0]
    # top two: 2.0 / 1.5 (margin 0.5) and 0.1 / 0.0 (margin 0.1); the difference's sd is bounded by 1 + 1
    torch.testing.assert_close(got, 2 * torch.atan(torch.tensor([0.5, 0.1]) / 1.0) / torch.pi)


def test_folds_without_mirroring_are_all_surveyed():
    """No mirroring: the survey (one pass per fold) is the whole ensemble, so nothing is left to run."""
    net = Ramp().eval()
    window = SlidingWindow(net, (16, 16, 16), 2, step=0.5, accumulate_dtype="float32")
    with torch.inference_mode():
        logits, passes = adaptive_logits(window, _image(), FOLDS, net.load_state_dict, 0.999999, region_based=False)
    assert passes.marked == 0 and passes.run == passes.full == passes.tiles * len(FOLDS)
    total = 0
    with torch.inference_mode():
        for weights in FOLDS:
            net.load_state_dict(weights)
            total = total + window(_image())
    torch.testing.assert_close(logits, total / len(FOLDS), atol=1e-4, rtol=1e-4)


def test_each_fold_runs_its_mirrorings_in_complementary_pairs():
    combos = mirror_combinations((0, 1, 2))
    assert mirroring_orders(1, (0, 1, 2))[0][:2] == [(), (0, 1, 2)]  # a lone fold: two passes, far apart
    orders = mirroring_orders(5, (0, 1, 2))
    assert all(sorted(order) == sorted(combos) for order in orders)  # every fold gets every mirroring
    assert len({order[0] for order in orders}) == 5  # the survey meets five mirrorings
    for order in orders:
        for start in range(0, 8, 2):  # any pass and the next of its fold differ along every axis
            assert set(order[start]) ^ set(order[start + 1]) == {0, 1, 2}
        assert all(sum(axis in m for m in order[:4]) == 2 for axis in range(3))  # four: each axis in half
    assert mirroring_orders(2, ()) == [[()], [()]]
    assert stages(5, 8) == [1, 2, 4, 8] and stages(1, 8) == [2, 4, 8] and stages(3, 4) == [1, 2, 4]
    assert stages(3, 1) == [1]  # no mirroring: the survey is every pass


def test_doubt_counts_with_the_tiles_share_of_its_weight():
    """A small cluster in doubt at one tile's centre marks that tile, not the neighbour whose border it is on
    (the old rule, "any voxel in doubt", marked both)."""
    window = SlidingWindow(Ramp(), (16, 16, 16), 2, step=0.5, accumulate_dtype="float32")
    padded, _, tiles, weights = window.prepare(_image())
    weights = weights.float()
    weight_sum = torch.zeros(padded.shape[1:])
    for tile in tiles:
        weight_sum[tile] += weights
    doubt = torch.zeros(padded.shape[1:], dtype=torch.bool)
    doubt[7:9, 7:9, 39:41] = True  # 8 voxels at the centre of the tile starting at x 32, the edge of the one at 40
    starts = [t[-1].start for t in tiles]
    answered = {start: doubt_answered(doubt[t], t, weights, weight_sum) for start, t in zip(starts, tiles)}
    assert sum(answered.values()) == pytest.approx(8, rel=1e-5)  # each voxel's doubt is shared out whole
    assert answered[32] > 4 > answered[40] > 0
    assert [start for start, t in zip(starts, tiles) if needs_more(doubt[t], t, weights, weight_sum)] == [32]
    assert {starts[i] for i, t in enumerate(tiles) if doubt[t].any()} == {24, 32, 40}  # the old rule


def test_a_higher_threshold_marks_more_up_to_every_tile():
    _, strict = _run(adaptive=True, threshold=0.999999)  # wherever passes differ at all
    _, loose = _run(adaptive=True, threshold=0.5)
    assert strict.marked == strict.tiles > loose.marked
    assert strict.run == strict.full  # every tile marked: exactly the full ensemble's passes


def test_a_lone_fold_measures_its_spread_between_two_mirrorings():
    """One fold, survey of two passes among 8 mirrorings: the full mean can move s * sqrt((1/2 - 1/8) / 1)."""
    mean, sd = torch.tensor([[0.5]])[..., None], torch.tensor([[0.4]])[..., None]
    got = confidence(mean, sd, per_fold=2, folds=1, mirrorings=8, region_based=True)
    torch.testing.assert_close(got[0, 0], 2 * torch.atan(0.5 / (0.4 * torch.tensor(3 / 8).sqrt())) / torch.pi)


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.2, 1.5])
def test_threshold_outside_its_range_is_refused(threshold):
    with pytest.raises(MedSegError, match="adaptive threshold must be in"):
        PredictOptions(adaptive=True, adaptive_threshold=threshold).validate()


def test_a_tile_whose_mirrorings_agree_stops_at_its_second_stage():
    """The folds disagree tenfold everywhere, so that the survey (whose spread holds that) leaves every tile in doubt,
    but each fold's mirrorings agree: from two passes per fold the spread within folds shows that more cannot move
    the mean, and every tile stops there."""
    steady = [{"scale": torch.tensor(20.0), "tilt": torch.tensor(0.0)},
              {"scale": torch.tensor(2.0), "tilt": torch.tensor(0.0)}]
    net = Ramp().eval()
    window = SlidingWindow(net, (16, 16, 16), 2, step=0.5, mirror_axes=(0, 1, 2), accumulate_dtype="float32")
    with torch.inference_mode():
        logits, passes = adaptive_logits(window, _image(), steady, net.load_state_dict, 0.9, region_based=False)
        full = 0
        for weights in steady:
            net.load_state_dict(weights)
            full = full + window(_image()) / 2
    assert passes.per_fold == [2] * 11 and passes.marked == 11 and passes.run == 2 * 2 * 11
    assert str(passes) == "44 of 176 forward passes (0.25x); of 11 tiles, 11 ran 2 of 8 mirrorings per fold"
    torch.testing.assert_close(logits, full, atol=1e-4, rtol=1e-4)  # mirrorings that agree: the full mean


def test_memory_is_checked_before_any_pass(monkeypatch):
    """The grid's float32 sums and weights, and one tile's: both folds' sums, the squares, a pass, the mean and a
    spare (never every tile's)."""
    from chimerax.medseg import memory
    needed = 4 * (3 * 16 * 16 * 96 + (len(FOLDS) + 4) * 2 * 16 ** 3)
    net = Ramp().eval()
    window = SlidingWindow(net, (16, 16, 16), 2, step=0.5, mirror_axes=(0, 1, 2), accumulate_dtype="float32")
    monkeypatch.setattr(memory, "available_memory", lambda: needed)  # a tenth is kept back: too little
    with pytest.raises(MedSegError, match="Adaptive ensembling's float32 sums .* would need"):
        adaptive_logits(window, _image(), FOLDS, net.load_state_dict, 0.5, region_based=False)
    assert window.forward_seconds == 0  # refused before any pass
    monkeypatch.setattr(memory, "available_memory", lambda: int(needed / 0.9) + 1)
    with torch.inference_mode():
        adaptive_logits(window, _image(), FOLDS, net.load_state_dict, 0.5, region_based=False)


def _medseg(*args) -> int:
    return main(["predict", "--quiet", "--device", "cpu", *map(str, args)])


@pytest.mark.parametrize("extra, message", [
    (["--save-probabilities"], "--save-probabilities cannot be used with --adaptive"),
    (["--adaptive-threshold", "1.5"], "adaptive threshold must be in (0, 1)"),
    (["--adaptive-threshold", "0"], "adaptive threshold must be in (0, 1)"),
])
def test_bad_adaptive_settings_are_one_line_before_any_work(tiny_model, case_files, tmp_path, capsys, extra,
                                                            message):
    out = tmp_path / "out"
    assert _medseg("-m", tiny_model, "-i", *case_files, "-o", out, "--adaptive", *extra) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_probabilities_are_refused_by_the_api_too(tiny_model, case_files):
    predictor = Predictor.from_folder(tiny_model, device="cpu", adaptive=True)
    with pytest.raises(MedSegError, match="Probabilities cannot be saved with adaptive ensembling"):
        predictor.predict(read_case(case_files), save_probabilities=True)
