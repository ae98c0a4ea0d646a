"""Losses against nnU-Net's own (the oracle) and deep supervision weights/scales."""
import pytest
import torch

from chimerax.medseg.training.losses import (DeepSupervisionLoss, DiceBCELoss, DiceCELoss, deep_supervision_scales,
                                             deep_supervision_weights, downsample_targets, labels_to_regions)


@pytest.mark.parametrize("batch_dice", [False, True])
def test_dice_ce_equals_nnunet(batch_dice):
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 6, 7, 8)
    target = torch.randint(0, 3, (2, 1, 6, 7, 8))
    theirs = DC_and_CE_loss({"batch_dice": batch_dice, "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
                            weight_ce=1, weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
    assert float(DiceCELoss(batch_dice)(logits, target)) == pytest.approx(float(theirs(logits, target)), abs=1e-5)


def test_ignore_label_equals_nnunet():
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 5, 6, 7)
    target = torch.randint(0, 4, (2, 1, 5, 6, 7))  # 3 = ignore
    theirs = DC_and_CE_loss({"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
                            weight_ce=1, weight_dice=1, ignore_label=3, dice_class=MemoryEfficientSoftDiceLoss)
    ours = DiceCELoss(False, ignore_label=3)(logits, target)
    assert float(ours) == pytest.approx(float(theirs(logits, target.clone())), abs=1e-5)


def test_regions_dice_bce_equals_nnunet():
    from nnunetv2.training.loss.compound_losses import DC_and_BCE_loss
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
    torch.manual_seed(2)
    seg = torch.randint(0, 3, (2, 1, 6, 6, 6))
    target = labels_to_regions(seg, [(1, 2), (2,)])
    assert target.shape == (2, 2, 6, 6, 6) and bool((target[:, 0] == (seg[:, 0] > 0)).all())
    logits = torch.randn(2, 2, 6, 6, 6)
    theirs = DC_and_BCE_loss({}, {"batch_dice": False, "do_bg": True, "smooth": 1e-5, "ddp": False},
                             use_ignore_label=False, dice_class=MemoryEfficientSoftDiceLoss)
    assert float(DiceBCELoss(False)(logits, target)) == pytest.approx(float(theirs(logits, target)), abs=1e-5)


def test_perfect_prediction_scores_best():
    target = torch.randint(0, 3, (1, 1, 8, 8, 8))
    logits = torch.nn.functional.one_hot(target[:, 0], 3).movedim(-1, 1).float() * 50
    assert float(DiceCELoss(False)(logits, target)) == pytest.approx(-1.0, abs=1e-4)


def test_deep_supervision_weights_scales_and_targets():
    assert deep_supervision_weights(3) == pytest.approx([2 / 3, 1 / 3, 0.0])
    scales = deep_supervision_scales([[1, 1, 1], [1, 2, 2], [2, 2, 2]])
    assert scales == [[1, 1, 1], [1, 0.5, 0.5]]
    seg = torch.randint(0, 3, (2, 1, 8, 8, 8))
    targets = downsample_targets(seg, scales)
    assert targets[0] is seg and targets[1].shape == (2, 1, 8, 4, 4)
    assert set(targets[1].unique().tolist()) <= {0, 1, 2}
    loss = DeepSupervisionLoss(DiceCELoss(False), [1.0, 0.0])
    outputs = [torch.randn(2, 3, 8, 8, 8), torch.randn(2, 3, 8, 4, 4)]
    assert float(loss(outputs, targets)) == pytest.approx(float(DiceCELoss(False)(outputs[0], seg)), abs=1e-6)
