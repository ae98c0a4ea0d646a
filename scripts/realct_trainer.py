"""The trainer of scripts/make_real_ct_model.py: MedSeg's own, with Adam in place of SGD.

With nnU-Net's SGD (momentum 0.99, lr 0.01) a 600-iteration CPU run on the real CT learnt the vertebrae and
started on the liver only after ~400 iterations, with spleen, stomach and aorta still at 0: such short
schedules need an optimiser that moves faster at the start. The schedule stays the trainer's poly decay from
``--lr``; checkpoints still name nnUNetTrainer, so the model loads like any other.
"""
from __future__ import annotations

from chimerax.medseg.training.trainer import Trainer


class AdamTrainer(Trainer):
    def build_optimizer(self, parameters):
        import torch  # as the base trainer: torch is imported where it is used
        return torch.optim.AdamW(parameters, lr=self.options.initial_lr, weight_decay=self.options.weight_decay)
