"""Custom trainers from any file, the advisor's warnings, NaN stops training."""
import json

import pytest

from training_helpers import plan_tiny_dataset

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.inference.predictor import Predictor
from chimerax.medseg.models.checkpoint import load_checkpoint
from chimerax.medseg.training.advisor import TrainingDiverged, advise
from chimerax.medseg.training.extension import load_trainer_class
from chimerax.medseg.training.run import train
from chimerax.medseg.training.trainer import TrainingOptions

TRAINER_FILE = '''
from chimerax.medseg.training.trainer import Trainer

class ConstantLR(Trainer):
    """A user's trainer: a fixed learning rate and no rotation."""
    def learning_rate(self, epoch):
        return 0.005

    def augmentation_settings(self):
        settings = super().augmentation_settings()
        settings.rotation_p = 0.0
        return settings

class Exploding(Trainer):
    def build_loss(self):
        loss = super().build_loss()
        return lambda outputs, targets: loss(outputs, targets) * float("nan")

class NotATrainer:
    pass
'''


def _options(**changes):
    base = dict(epochs=2, iterations_per_epoch=2, validation_iterations=1, num_workers=0, device="cpu",
                validate=False, advisor_window=2)
    base.update(changes)
    return TrainingOptions(**base)


@pytest.fixture
def trainer_file(tmp_path):
    path = tmp_path / "somewhere" / "my_trainers.py"
    path.parent.mkdir()
    path.write_text(TRAINER_FILE)
    return path


def test_custom_trainer_from_a_file(tiny_data, trainer_file, tmp_path):
    cls = load_trainer_class(f"{trainer_file}:ConstantLR")
    assert cls.__name__ == "ConstantLR"
    said = []
    model = train(str(tiny_data["raw"]), "3d_fullres", ["0"], _options(), f"{trainer_file}:ConstantLR",
                  output=tmp_path / "out", preprocessed=tiny_data["preprocessed"], report=said.append)
    assert model.name == "ConstantLR__nnUNetPlans__3d_fullres"
    log = json.loads((model / "fold_0" / "training_log.json").read_text())["epochs"]
    assert [r["lr"] for r in log] == [0.005, 0.005]
    assert any("learning rate has not changed" in s for s in said)  # the advisor notices
    checkpoint = load_checkpoint(model / "fold_0" / "checkpoint_final.pth")
    assert checkpoint["trainer_name"] == "nnUNetTrainer"  # so nnU-Net's predictor can load it too
    assert checkpoint["medseg"]["trainer"].endswith(":ConstantLR")


def test_bad_trainer_specs(trainer_file):
    with pytest.raises(MedSegError, match="not found"):
        load_trainer_class("/no/such/file.py:X")
    with pytest.raises(MedSegError, match="defines no 'Missing'"):
        load_trainer_class(f"{trainer_file}:Missing")
    with pytest.raises(MedSegError, match="must subclass"):
        load_trainer_class(f"{trainer_file}:NotATrainer")
    with pytest.raises(MedSegError, match="Cannot import"):
        load_trainer_class("no_such_package.module:Trainer")
    assert load_trainer_class("chimerax.medseg.training.trainer:Trainer").__name__ == "Trainer"


def test_nan_loss_stops_training(tiny_data, trainer_file, tmp_path):
    with pytest.raises(TrainingDiverged, match="became nan in epoch 0"):
        train(str(tiny_data["raw"]), "3d_fullres", ["0"], _options(), f"{trainer_file}:Exploding",
              output=tmp_path / "out", preprocessed=tiny_data["preprocessed"], report=lambda s: None)
    assert not list((tmp_path / "out").rglob("checkpoint_final.pth"))


def _records(train_loss, val_loss, dice, lr):
    return [{"epoch": i, "train_loss": t, "val_loss": v, "pseudo_dice": d, "lr": l}
            for i, (t, v, d, l) in enumerate(zip(train_loss, val_loss, dice, lr))]


def test_advisor_reads_the_log_like_an_expert():
    n = 10
    healthy = _records([1 - 0.05 * i for i in range(n)], [1 - 0.04 * i for i in range(n)],
                       [[0.1 * i, 0.05 * i] for i in range(n)], [0.01 * (1 - i / 100) ** 0.9 for i in range(n)])
    assert advise(healthy, ["liver", "tumor"], window=n) == []
    dead = _records([1 - 0.05 * i for i in range(n)], [1 - 0.04 * i for i in range(n)],
                    [[0.1 * i, 0.0] for i in range(n)], [0.01 - 1e-4 * i for i in range(n)])
    warnings = advise(dead, ["liver", "tumor"], window=n)
    assert len(warnings) == 1 and "'tumor'" in warnings[0] and "channel" in warnings[0]
    overfit = _records([1 - 0.05 * i for i in range(n)], [0.5 + 0.03 * i for i in range(n)],
                       [[0.5, 0.5]] * n, [0.01 - 1e-4 * i for i in range(n)])
    assert any("overfitting" in w for w in advise(overfit, ["a", "b"], window=n))
    frozen = _records([1 - 0.05 * i for i in range(n)], [1 - 0.04 * i for i in range(n)], [[0.5, 0.5]] * n,
                      [0.01] * n)
    assert any("learning rate has not changed" in w for w in advise(frozen, ["a", "b"], window=n))
    assert advise(frozen[:5], ["a", "b"], window=n) == []  # too early to judge


def test_channel_dropout_is_recorded_and_gates_missing_channels(tmp_path, trained_model):
    from chimerax.medseg.inference.missing_channels import check_missing_channels
    data = plan_tiny_dataset(tmp_path / "two", dataset_id=44, name="Two", cases=4, channels=("T1", "T2"))
    model = train(str(data["raw"]), "3d_fullres", ["0"], _options(channel_drop_p=0.5, epochs=1),
                  output=tmp_path / "out", preprocessed=data["preprocessed"], report=lambda s: None)
    assert Predictor.from_folder(model, device="cpu").allows_missing_channels
    assert not Predictor.from_folder(trained_model, device="cpu").allows_missing_channels
    assert "filled with zeros" in check_missing_channels(["T2"], True)
    with pytest.raises(MedSegError, match="not trained to work without"):
        check_missing_channels(["T2"], False)
