"""Training a cascade stage (3d_cascade_fullres) as nnU-Net does.

Where the previous stage's segmentations come from (nnU-Net's ``nnUNetTrainer``): each 3d_lowres
fold, when validated, writes its prediction of every validation case onto the next stage's
preprocessed grid as ``<lowres model>/predicted_next_stage/<next stage>/<case>.npz`` (key ``seg``).
With all folds of the lowres stage validated, every case has one made by a model that never saw
it; the cascade stage trains on those. Each training patch carries that map as a second
segmentation channel through the spatial augmentation (nearest neighbour, like the labels), and
it reaches the network one-hot encoded per foreground label after the image channels, as at
inference (inference/cascade.py); in training the one-hot maps are perturbed as nnU-Net perturbs them
(random dilation/erosion/opening/closing, a removed connected component).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import MedSegError
from ..inference.cascade import foreground_values, previous_stage_name
from ..inference.next_stage import predictions_dir, previous_stage_model_dir
from .data import PreprocessedCases


def previous_stage_channels(setup) -> int:
    """Extra network inputs of the configuration trained: one per foreground label for a cascade stage."""
    return len(foreground_values(setup.dataset_json)) if previous_stage_name(setup.config) else 0


def check_previous_stage(setup, cases: Sequence[str], trainer_name: str) -> Path | None:
    """For a cascade stage: the folder with the previous stage's prediction of every case, checked
    before training starts; None for any other configuration."""
    previous = previous_stage_name(setup.config)
    if previous is None:
        return None
    folder = predictions_dir(previous_stage_model_dir(setup.model_dir, previous), setup.configuration)
    missing = [c for c in cases if not (folder / f"{c}.npz").is_file()]
    if missing:
        dataset = setup.plans.get("dataset_name", "DATASET")
        raise MedSegError(f"Training {setup.configuration} needs the {previous} stage's prediction of every case "
                          f"({len(missing)} of {len(cases)} missing in {folder}, e.g. {', '.join(missing[:3])}). The "
                          f"{previous} folds write them when they are validated: run `medseg train {dataset} "
                          f"{previous} -f 0 1 2 3 4{_trainer_flag(trainer_name)}` (with validation) first.")
    return folder


def _trainer_flag(name: str) -> str:
    return "" if name == "nnUNetTrainer" else f" --trainer {name}"


class CascadeCases(PreprocessedCases):
    """Preprocessed cases whose segmentation carries the previous stage's map as a second channel."""

    def __init__(self, folder, names, previous_dir: Path) -> None:
        super().__init__(folder, names)
        self.previous_dir = Path(previous_dir)

    def load(self, name: str):
        if name not in self._cache:
            data, seg, locations = super().load(name)
            with np.load(self.previous_dir / f"{name}.npz", allow_pickle=False) as npz:
                previous = npz["seg"]
            if previous.shape != seg.shape[1:]:
                raise MedSegError(f"The previous stage's prediction of case {name} ({previous.shape}) does not fit "
                                  f"its preprocessed data ({seg.shape[1:]}); predict the previous stage again.")
            self._cache[name] = (data, np.stack([seg[0], previous.astype(seg.dtype)]), locations)
        return self._cache[name]


def with_previous_stage_input(data, seg, dataset_json: dict, rngs: Sequence[np.random.Generator] | None = None):
    """Batches (b, c, ...) + (b, 2, ...) -> network input with the one-hot previous stage, and (b, 1, ...) labels.

    ``rngs`` (one per sample): perturb each sample's one-hot maps as nnU-Net's cascade training does
    (:func:`perturb_previous_stage`); None (validation) leaves them as they are.
    """
    import torch
    values = foreground_values(dataset_json)
    previous = seg[:, 1]
    onehot = torch.stack([(previous == value) for value in values], 1).to(data.dtype)
    if rngs is not None:
        perturbed = [perturb_previous_stage(onehot[i].cpu().numpy() > 0, rng) for i, rng in enumerate(rngs)]
        onehot = torch.from_numpy(np.stack(perturbed)).to(device=data.device, dtype=data.dtype)
    return torch.cat([data, onehot], 1), seg[:, :1]


CASCADE_STREAM = 11  # the random stream of the perturbations (training/data.py sample_seed)

# nnU-Net's cascade augmentation of the previous stage's one-hot maps (its nnUNetTrainer: a random
# binary operator with p 0.4, a removed connected component with p 0.2; each label with p 0.5)
MORPHOLOGY_P, COMPONENT_P, PER_LABEL_P = 0.4, 0.2, 0.5
STRUCTURE_RADIUS = (1, 8)
LARGEST_REMOVED_COMPONENT = 0.15  # of the patch: larger components are never removed


def perturb_previous_stage(onehot: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One sample's one-hot maps (k, *patch) bool, perturbed so the cascade does not trust them blindly."""
    out = onehot.copy()
    if rng.random() < MORPHOLOGY_P:
        for channel in rng.permutation(len(out)):
            if rng.random() < PER_LABEL_P:
                _random_morphology(out, int(channel), rng)
    if rng.random() < COMPONENT_P:
        for channel in rng.permutation(len(out)):
            if rng.random() < PER_LABEL_P:
                _remove_random_component(out[channel], rng)
    return out.astype(np.float32)


def _random_morphology(onehot: np.ndarray, channel: int, rng: np.random.Generator) -> None:
    from scipy import ndimage
    operation = [ndimage.binary_dilation, ndimage.binary_erosion, ndimage.binary_closing,
                 ndimage.binary_opening][int(rng.integers(4))]
    radius = float(rng.uniform(*STRUCTURE_RADIUS))
    before = onehot[channel]
    after = operation(before, structure=_ball(radius, before.ndim))
    added = after & ~before
    onehot[:, added] = False  # stays one-hot: what a label gained, the others lose
    onehot[channel] = after


def _remove_random_component(mask: np.ndarray, rng: np.random.Generator) -> None:
    from scipy import ndimage
    components, count = ndimage.label(mask)
    if count == 0:
        return
    sizes = np.bincount(components.ravel())[1:]
    small = np.flatnonzero(sizes <= LARGEST_REMOVED_COMPONENT * mask.size) + 1
    if small.size:
        mask[components == small[rng.integers(small.size)]] = False


def _ball(radius: float, ndim: int) -> np.ndarray:
    r = int(np.floor(radius))
    grid = np.ogrid[tuple(slice(-r, r + 1) for _ in range(ndim))]
    squared = np.zeros([2 * r + 1] * ndim)
    for g in grid:
        squared = squared + g.astype(np.float64) ** 2
    return np.asarray(squared <= radius ** 2, dtype=bool)
