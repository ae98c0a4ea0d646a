"""Patches from preprocessed cases: foreground oversampling, padding, reproducibility, batch shares."""
import numpy as np
import pytest

from chimerax.medseg.training.data import PatchSampler, PreprocessedCases, crop_padded


@pytest.fixture(scope="module")
def cases(tiny_data):
    return PreprocessedCases(tiny_data["preprocessed"] / "nnUNetPlans_3d_fullres")


def test_last_third_of_each_batch_holds_foreground(cases):
    sampler = PatchSampler(cases, (3, 3, 3), (3, 3, 3), batch_size=3)
    assert [sampler.forces_foreground(i) for i in range(3)] == [False, False, True]
    forced = [sampler.sample(step, 2)[1] for step in range(40)]
    assert all((seg > 0).any() for seg in forced)
    free = [sampler.sample(step, 0)[1] for step in range(40)]
    assert any(not (seg > 0).any() for seg in free), "unforced patches should sometimes miss the small foreground"


def test_patch_shapes_and_padding(cases):
    data, seg, _ = cases.load(cases.names[0])
    assert data.shape[1:] == seg.shape[1:]
    sampler = PatchSampler(cases, (24, 30, 30), (16, 16, 16), batch_size=2)  # larger than the case
    d, s = sampler.batch(5)
    assert d.shape == (2, 1, 24, 30, 30) and s.shape == (2, 1, 24, 30, 30)
    assert d.dtype == np.float32 and (s == -1).any()  # outside the case: label -1, later background
    box = crop_padded(np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2), (-1, 0, 0), (3, 2, 2), 0)
    assert box[0, 0].sum() == 0 and box[0, 1:].ravel().tolist() == list(range(8))


def test_same_seed_same_batch_and_shares_add_up(cases):
    sampler = PatchSampler(cases, (8, 8, 8), (8, 8, 8), batch_size=4, seed=3)
    full = sampler.batch(11)
    again = sampler.batch(11)
    np.testing.assert_array_equal(full[0], again[0])
    first, second = sampler.batch(11, [0, 1]), sampler.batch(11, [2, 3])  # two DDP ranks
    np.testing.assert_array_equal(np.concatenate([first[0], second[0]]), full[0])
    assert not np.array_equal(sampler.batch(12)[0], full[0])


def test_2d_configuration_draws_slices(cases):
    sampler = PatchSampler(cases, (12, 12), (10, 10), batch_size=3)
    data, seg = sampler.batch(0)
    assert data.shape == (3, 1, 12, 12) and seg.shape == (3, 1, 12, 12)
    assert (seg[2] > 0).any()  # the oversampled slice holds foreground


def test_batches_do_not_depend_on_workers_or_where_augmentation_runs(cases):
    import torch
    from chimerax.medseg.training.augmentation import Augmenter
    from chimerax.medseg.training.loader import BatchStream, augment_batch, make_loader
    aug = Augmenter((8, 8, 8))
    sampler = PatchSampler(cases, aug.sample_size, (8, 8, 8), batch_size=2, seed=1)

    def first(workers, augment_here):
        loader = iter(make_loader(BatchStream(sampler, [0, 1], 10, aug, augment_here, 1), workers))
        return [next(loader) for _ in range(4)]

    in_process, in_workers = first(0, True), first(2, True)
    raw = first(0, False)  # as on a GPU: workers only cut patches, the training process augments
    for (s1, d1, g1), (s2, d2, g2), (s3, d3, g3) in zip(in_process, in_workers, raw):
        d3, g3 = augment_batch(aug, d3, g3, s3, [0, 1], 1)
        assert s1 == s2 == s3
        assert torch.equal(d1, d2) and torch.equal(g1, g2)
        torch.testing.assert_close(d1, d3)
        assert torch.equal(g1, g3)
    assert [s for s, _, _ in in_process] == [10, 11, 12, 13]


@pytest.mark.parametrize("shape", [(36, 58, 48), (120, 130, 141), (9, 200, 30)])
def test_patch_boxes_follow_nnunets_rule(shape):
    """Where a box may lie, and where a foreground box lies, as nnU-Net's own ``get_bbox`` decides
    (called on a stand-in loader): cases smaller than the sample must not drift off-centre."""
    from types import SimpleNamespace
    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
    size, final = np.array((80, 100, 96)), np.array((40, 64, 56))
    loader = SimpleNamespace(need_to_pad=size - final, patch_size=size, has_ignore=False,
                             annotated_classes_key=(-1, 0, 1))
    np.random.seed(0)
    theirs = np.array([nnUNetDataLoader.get_bbox(loader, np.array(shape), False, None)[0] for _ in range(3000)])
    rng = np.random.default_rng(0)
    ours = np.array([PatchSampler._lower_corner(shape, {}, False, rng, size, final) for _ in range(3000)])
    np.testing.assert_array_equal(ours.min(0), theirs.min(0))
    np.testing.assert_array_equal(ours.max(0), theirs.max(0))
    for voxel in ([0, 3, 1, 2], [0, *[n - 1 for n in shape]], [0, *[n // 2 for n in shape]]):
        locations = {1: np.array([voxel])}
        expected = nnUNetDataLoader.get_bbox(loader, np.array(shape), True, locations)[0]
        assert PatchSampler._lower_corner(shape, locations, True, rng, size, final) == [int(v) for v in expected]
