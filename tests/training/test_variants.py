"""nnU-Net's trainer variants by name: the list against nnU-Net's own files, the losses against its
variants' own loss code, a trained variant folder that nnU-Net's predictor loads, --num-folds."""
import ast
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from training_helpers import run_cli, train_args

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.inference.predictor import Predictor
from chimerax.medseg.models.checkpoint import load_checkpoint
from chimerax.medseg.training.losses import named_loss
from chimerax.medseg.training.trainer import TrainingOptions
from chimerax.medseg.training.variants import VARIANTS, apply_variant, find_variant

NNUNET_VARIANTS = Path(__import__("nnunetv2").__file__).parent / "training" / "nnUNetTrainer" / "variants"


def _shipped_classes(path: Path) -> dict[str, dict]:
    """Class name -> {"epochs": N or None, "mirroring": bool} read from an nnU-Net source file."""
    found = {}
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.ClassDef):
            continue
        epochs, mirroring = None, True
        for sub in ast.walk(node):
            if isinstance(sub, ast.Assign) and isinstance(sub.targets[0], ast.Attribute):
                attr, value = sub.targets[0].attr, sub.value
                if attr == "num_epochs" and isinstance(value, ast.Constant):
                    epochs = value.value
                if attr == "inference_allowed_mirroring_axes" and isinstance(value, ast.Constant):
                    mirroring = value.value is not None
        found[node.name] = {"epochs": epochs, "mirroring": mirroring}
    return found


def test_every_shipped_epoch_and_mirroring_variant_is_known_with_its_settings():
    shipped = {}
    for path in (NNUNET_VARIANTS / "training_length").glob("*.py"):
        shipped.update(_shipped_classes(path))
    mirroring = _shipped_classes(NNUNET_VARIANTS / "data_augmentation" / "nnUNetTrainerNoMirroring.py")
    shipped["nnUNetTrainerNoMirroring"] = mirroring["nnUNetTrainerNoMirroring"]
    shipped.update(_shipped_classes(NNUNET_VARIANTS / "loss" / "nnUNetTrainerCELoss.py"))
    assert len(shipped) >= 18 and "nnUNetTrainer_2000epochs" in shipped and "nnUNetTrainer_8000epochs" in shipped
    for name, settings in shipped.items():
        ours = VARIANTS[name]
        assert (ours.epochs, ours.mirroring) == (settings["epochs"], settings["mirroring"]), name


@pytest.mark.parametrize("regions", [False, True])
@pytest.mark.parametrize("variant", ["nnUNetTrainerDiceLoss", "nnUNetTrainerCELoss",
                                     "nnUNetTrainerDiceCELoss_noSmooth"])
def test_loss_variants_equal_the_loss_nnunets_variant_builds(variant, regions):
    module = "nnUNetTrainerCELoss" if variant == "nnUNetTrainerCELoss" else "nnUNetTrainerDiceLoss"
    cls = getattr(__import__(f"nnunetv2.training.nnUNetTrainer.variants.loss.{module}", fromlist=[variant]), variant)
    # the variant's own _build_loss, on the few attributes it reads
    trainer = SimpleNamespace(configuration_manager=SimpleNamespace(batch_dice=False), is_ddp=False,
                              label_manager=SimpleNamespace(has_regions=regions, ignore_label=None,
                                                            has_ignore_label=False),
                              enable_deep_supervision=False)
    ours_name = find_variant(variant).loss
    if regions and variant == "nnUNetTrainerCELoss":
        with pytest.raises(AssertionError):
            cls._build_loss(trainer)
        with pytest.raises(MedSegError, match="labels, not regions"):
            named_loss(ours_name, False, True, None)
        return
    theirs = cls._build_loss(trainer)
    ours = named_loss(ours_name, False, regions, None)
    torch.manual_seed(3)
    logits = torch.randn(2, 3, 5, 6, 7)
    target = (torch.rand(2, 3, 5, 6, 7) > 0.6).to(torch.uint8) if regions else torch.randint(0, 3, (2, 1, 5, 6, 7))
    target[0, :, 0] = 0  # an empty slice of a class, where smoothing matters
    expected = float(theirs(logits, target.clone()))
    assert float(ours(logits, target)) == pytest.approx(expected, abs=1e-5)


def test_unknown_names_get_close_matches_and_the_list():
    with pytest.raises(MedSegError) as error:
        find_variant("nnUNetTrainer_2000epoch")
    text = str(error.value)
    assert "Did you mean nnUNetTrainer_2000epochs" in text and "nnUNetTrainerNoMirroring" in text
    assert "8000" in text and "path/to/file.py:ClassName" in text
    with pytest.raises(MedSegError, match="contradicts nnUNetTrainer_2000epochs"):
        apply_variant(TrainingOptions(), find_variant("nnUNetTrainer_2000epochs"), epochs=50)
    with pytest.raises(MedSegError, match="contradicts nnUNetTrainerDiceLoss"):
        apply_variant(TrainingOptions(), find_variant("nnUNetTrainerDiceLoss"), loss="ce")
    assert apply_variant(TrainingOptions(), find_variant("nnUNetTrainer_2000epochs"), epochs=2000).epochs == 2000


def test_cli_refuses_bad_names_before_any_work(tiny_data, tmp_path):
    data = {**tiny_data, "results": tmp_path / "out"}
    for extra, message in ((["--trainer", "nnUNetTrainerNoMirorring"], "Did you mean nnUNetTrainerNoMirroring"),
                           (["--trainer", "nnUNetTrainer_5epochs", "--epochs", "3"], "contradicts"),
                           (["--num-folds", "1"], "at least 2")):
        result = run_cli(train_args(data, *extra))
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_variant_trains_into_its_named_folder_and_loads_in_nnunet(tiny_data, tmp_path):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.crossval_split import generate_crossval_split
    pre = tmp_path / "pre"
    shutil.copytree(tiny_data["preprocessed"], pre, ignore=shutil.ignore_patterns("splits_final.json"))
    data = {**tiny_data, "preprocessed": pre, "results": tmp_path / "out"}
    result = run_cli(train_args(data, "--trainer", "nnUNetTrainerNoMirroring", "--loss", "dice", "--epochs", "1",
                                "--iterations", "2", "--val-iterations", "1", "--num-folds", "3", "--fold", "2",
                                "--no-validation"))
    assert result.returncode == 0, result.stderr
    model = tmp_path / "out" / "nnUNetTrainerNoMirroring__nnUNetPlans__3d_fullres"
    checkpoint = load_checkpoint(model / "fold_2" / "checkpoint_final.pth")
    assert checkpoint["inference_allowed_mirroring_axes"] is None  # as nnU-Net writes it for this variant
    assert checkpoint["medseg"]["options"]["loss"] == "dice" and checkpoint["current_epoch"] == 1
    cases = sorted(p.name[:-5] for p in (pre / "nnUNetPlans_3d_fullres").glob("*.json"))
    splits = json.loads((pre / "splits_final.json").read_text())
    theirs = generate_crossval_split(cases, seed=12345, n_splits=3)
    assert splits == [{"train": list(f["train"]), "val": list(f["val"])} for f in theirs]
    predictor = nnUNetPredictor(device=torch.device("cpu"), use_mirroring=True)
    predictor.initialize_from_trained_model_folder(str(model), use_folds=(2,))
    assert predictor.allowed_mirroring_axes is None
    assert Predictor.from_folder(model, folds=[2], device="cpu").mirror_axes == ()  # ours does not mirror it either
    again = run_cli(train_args(data, "--num-folds", "4", "--epochs", "1", "--iterations", "1"))
    assert again.returncode == 1 and "holds 3 folds, not the 4" in again.stderr
