import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from training_helpers import plan_tiny_dataset  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict:
    """A planned, preprocessed 6-case dataset with two labels (shared: tests write results elsewhere)."""
    return plan_tiny_dataset(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def trained_model(tiny_data, tmp_path_factory) -> Path:
    """Fold 0 trained for 2 epochs x 3 iterations, validated on full images."""
    from chimerax.medseg.training.run import train
    from chimerax.medseg.training.trainer import TrainingOptions
    options = TrainingOptions(epochs=2, iterations_per_epoch=3, validation_iterations=2, num_workers=0,
                              device="cpu", save_every=1, validation_mirroring=False)
    out = tmp_path_factory.mktemp("trained")
    return train(str(tiny_data["raw"]), "3d_fullres", ["0"], options, output=out,
                 preprocessed=tiny_data["preprocessed"], report=lambda text: None)
