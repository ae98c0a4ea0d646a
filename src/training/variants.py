"""nnU-Net v2's shipped trainer variants, understood by name.

A variant such as ``nnUNetTrainer_2000epochs`` or ``nnUNetTrainerDiceLoss`` changes one or two
settings of the default recipe (the epoch count, mirroring, the loss). Here each is a row of
settings applied to the one :class:`~chimerax.medseg.training.trainer.Trainer`, not a class:
the model folder carries the variant's name (``nnUNetTrainer_2000epochs__nnUNetPlans__3d_fullres``),
as nnU-Net names it. The list follows ``nnunetv2/training/nnUNetTrainer/variants/``
(training_length, data_augmentation/nnUNetTrainerNoMirroring, loss).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, replace

from ..errors import MedSegError

DEFAULT_TRAINER = "nnUNetTrainer"
DEFAULT_EPOCHS = 1000
DEFAULT_LOSS = "dice_ce"

#: the losses by their option value (``--loss``), with what they are
LOSSES = {
    "dice_ce": "Dice + cross-entropy 1:1 (regions: Dice + binary cross-entropy), nnU-Net's default",
    "dice": "soft Dice only (nnUNetTrainerDiceLoss)",
    "ce": "cross-entropy only (nnUNetTrainerCELoss; label datasets, not regions)",
    "dice_ce_nosmooth": "Dice + cross-entropy with Dice smoothing 0 (nnUNetTrainerDiceCELoss_noSmooth)",
}

# the epoch counts nnU-Net ships as nnUNetTrainer_<N>epochs (and _1epoch), and those with _NoMirroring
SHIPPED_EPOCHS = (1, 5, 10, 20, 50, 100, 250, 500, 750, 2000, 4000, 8000)
SHIPPED_EPOCHS_NO_MIRRORING = (250, 2000, 4000, 8000)


@dataclass(frozen=True)
class TrainerVariant:
    """The settings a named variant changes; ``None`` keeps the run's own value."""

    name: str
    epochs: int | None = None
    mirroring: bool = True
    loss: str | None = None


def _epochs_name(n: int) -> str:
    return f"{DEFAULT_TRAINER}_{n}epoch" if n == 1 else f"{DEFAULT_TRAINER}_{n}epochs"


def _shipped_variants() -> dict[str, TrainerVariant]:
    rows = [TrainerVariant(DEFAULT_TRAINER)]
    rows += [TrainerVariant(_epochs_name(n), epochs=n) for n in SHIPPED_EPOCHS]
    rows += [TrainerVariant(f"{_epochs_name(n)}_NoMirroring", epochs=n, mirroring=False)
             for n in SHIPPED_EPOCHS_NO_MIRRORING]
    rows += [TrainerVariant("nnUNetTrainerNoMirroring", mirroring=False),
             TrainerVariant("nnUNetTrainerDiceLoss", loss="dice"),
             TrainerVariant("nnUNetTrainerCELoss", loss="ce"),
             TrainerVariant("nnUNetTrainerCELoss_5epochs", epochs=5, loss="ce"),
             TrainerVariant("nnUNetTrainerDiceCELoss_noSmooth", loss="dice_ce_nosmooth")]
    return {v.name: v for v in rows}


VARIANTS = _shipped_variants()
ALIASES = {"Trainer": DEFAULT_TRAINER, "default": DEFAULT_TRAINER}  # names the default trainer went by


def is_variant_name(spec: str) -> bool:
    """A bare class-like name (no module path, no file): looked up among the variants, never imported."""
    return ":" not in spec and "." not in spec and "/" not in spec and "\\" not in spec


def find_variant(name: str) -> TrainerVariant:
    """The variant called ``name``; an unknown name gets the close matches and the whole list."""
    name = ALIASES.get(name, name)
    if name in VARIANTS:
        return VARIANTS[name]
    close = difflib.get_close_matches(name, list(VARIANTS), n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise MedSegError(f"Unknown trainer {name!r}.{hint} Known nnU-Net trainers: {known_names()}. "
                      "A trainer of your own is given as path/to/file.py:ClassName or package.module:ClassName.")


def known_names() -> str:
    """The list of known variants in a short form (the epoch counts folded into one entry)."""
    counts = ", ".join(str(n) for n in SHIPPED_EPOCHS)
    others = [n for n, v in VARIANTS.items() if v.epochs is None or v.loss is not None]
    return (f"{', '.join(others)}, {DEFAULT_TRAINER}_<N>epochs (N = {counts}; _1epoch for 1), "
            f"{DEFAULT_TRAINER}_<N>epochs_NoMirroring (N = {', '.join(map(str, SHIPPED_EPOCHS_NO_MIRRORING))})")


def check_loss_name(loss: str) -> str:
    if loss not in LOSSES:
        close = difflib.get_close_matches(loss, list(LOSSES), n=2, cutoff=0.5)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise MedSegError(f"Unknown loss {loss!r}.{hint} Known losses: {', '.join(LOSSES)}.")
    return loss


def apply_variant(options, variant: TrainerVariant, epochs: int | None = None, loss: str | None = None):
    """``options`` with the variant's settings and the run's explicit ``epochs`` / ``loss``.

    An explicit value that contradicts the variant is refused rather than silently winning:
    the model folder is named after the variant, so it must be what was trained.
    """
    if epochs is not None and variant.epochs is not None and epochs != variant.epochs:
        raise MedSegError(f"--epochs {epochs} contradicts {variant.name} ({variant.epochs} epochs); "
                          f"give one of them (e.g. {DEFAULT_TRAINER} with --epochs {epochs}).")
    if loss is not None and variant.loss is not None and check_loss_name(loss) != variant.loss:
        raise MedSegError(f"--loss {loss} contradicts {variant.name} (loss {variant.loss}); give one of them.")
    chosen_epochs = variant.epochs or epochs or DEFAULT_EPOCHS
    chosen_loss = check_loss_name(variant.loss or loss or DEFAULT_LOSS)
    return replace(options, epochs=chosen_epochs, loss=chosen_loss, mirroring=variant.mirroring and options.mirroring,
                   variant=None if variant.name == DEFAULT_TRAINER else variant.name)
