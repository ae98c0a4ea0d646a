"""What each nnU-Net v1 trainer changes at inference."""
from __future__ import annotations

import pytest

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.models.v1_trainers import TRAINERS, trainer_behaviour


def test_published_trainers_are_known():
    assert trainer_behaviour("nnUNetTrainerV2").norm == "instance"
    brats = trainer_behaviour("nnUNetTrainerV2BraTSRegions_DA4_BN")
    assert brats.norm == "batch" and brats.brats_regions and brats.mirroring
    assert trainer_behaviour("nnUNetTrainerV2BraTSRegions_DA3").norm == "instance"
    assert not trainer_behaviour("nnUNetTrainerV2_noMirroring").mirroring


def test_a_labs_subclass_behaves_as_its_longest_known_parent():
    parent = TRAINERS["nnUNetTrainerV2BraTSRegions_DA4_BN"]
    assert trainer_behaviour("nnUNetTrainerV2BraTSRegions_DA4_BN_myLab") == parent
    assert trainer_behaviour("nnUNetTrainerV2_BN_200epochs").norm == "batch"
    assert trainer_behaviour("nnUNetTrainerV2_100epochs") == TRAINERS["nnUNetTrainerV2"]


def test_the_cascade_trainer_runs_as_nnunettrainerv2():
    """Its network is nnUNetTrainerV2's; only its inputs differ (the configuration says so, v1_folder.py)."""
    assert trainer_behaviour("nnUNetTrainerV2CascadeFullRes") == TRAINERS["nnUNetTrainerV2"]


def test_unknown_trainer_lists_the_known_ones():
    with pytest.raises(MedSegError, match=r"'MyTrainer'.*Known trainers: .*nnUNetTrainerV2BraTSRegions_DA4_BN"):
        trainer_behaviour("MyTrainer")


def test_known_but_unsupported_trainers_say_why():
    with pytest.raises(MedSegError, match="residual"):
        trainer_behaviour("nnUNetTrainerV2_ResencUNet_DA3")
