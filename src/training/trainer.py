"""The trainer: nnU-Net's training recipe on our own code, writing an nnU-Net v2 model folder.

Extend it without forking: subclass :class:`Trainer` in any file and override one of the small
``build_*`` / ``learning_rate`` / ``augmentation_settings`` methods, then pass
``--trainer path/to/file.py:MyTrainer`` (see ``extension.py``).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..datasets.splits import fold_cases, load_patients
from ..errors import Cancelled, MedSegError
from ..evaluation.crossval import validate_fold
from ..fileio import write_json
from ..inference.device import select_device
from ..models.checkpoint import load_checkpoint
from ..models.labels import LabelScheme
from ..models.model_folder import resolve_configuration
from ..network.build import build_network
from . import checkpoints as ckpt
from .advisor import advise, check_loss
from .augmentation import AugmentationSettings, Augmenter, default_settings
from .cascade import (
    CASCADE_STREAM,
    CascadeCases,
    check_previous_stage,
    previous_stage_channels,
    with_previous_stage_input,
)
from .data import PatchSampler, PreprocessedCases, sample_seed
from .loader import BatchStream, augment_batch, make_loader
from .losses import (
    DeepSupervisionLoss,
    deep_supervision_scales,
    deep_supervision_weights,
    downsample_targets,
    labels_to_regions,
    named_loss,
)
from .outputs import clear_fold, discard_stale_results, refuse_existing
from .progress_log import TrainingLog, plot_progress
from .schedule import poly_lr, set_lr
from .transfer import read_pretrained, transfer_weights
from .variants import DEFAULT_EPOCHS, DEFAULT_LOSS

EMA_OLD_WEIGHT = 0.9   # the pseudo-Dice moving average nnU-Net uses to pick checkpoint_best
GRADIENT_CLIP = 12.0


@dataclass
class TrainingOptions:
    """Everything a run can change; the defaults are nnU-Net's."""

    epochs: int = DEFAULT_EPOCHS
    iterations_per_epoch: int = 250
    validation_iterations: int = 50
    initial_lr: float = 1e-2
    weight_decay: float = 3e-5
    momentum: float = 0.99
    save_every: int = 50
    seed: int = 0
    device: str = "auto"
    num_workers: int | None = None   # None: chosen from the CPU count
    batch_size: int | None = None    # None: the plans' batch size
    oversample: float = 0.33
    augment: bool = True
    channel_drop_p: float = 0.0      # missing-sequence robustness
    mixed_precision: bool | None = None  # None: on for CUDA
    advisor_window: int = 20
    validate: bool = True            # full-image validation after training
    save_probabilities: bool = False  # keep validation probabilities (for the ensemble choice)
    validation_mirroring: bool = True  # test-time mirroring in the full-image validation (as nnU-Net)
    pretrained: str | None = None
    freeze_stages: int = 0
    splits_file: str | None = None
    patients_file: str | None = None
    num_folds: int | None = None     # folds of a new splits_final.json (None: 5, or the existing file's)
    loss: str = DEFAULT_LOSS         # see variants.LOSSES
    mirroring: bool = True           # mirroring in augmentation and at inference (nnUNetTrainerNoMirroring: off)
    variant: str | None = None       # the nnU-Net trainer variant reproduced (names the model folder)


@dataclass
class TrainingSetup:
    """What is trained: plans + configuration + dataset + preprocessed data, and where it goes."""

    plans: dict
    configuration: str
    dataset_json: dict
    preprocessed_dir: Path      # the dataset's preprocessed folder (plans, splits_final.json, data)
    model_dir: Path             # <Trainer>__<Plans>__<configuration>
    fold: str
    fingerprint: dict | None = None
    raw_dir: Path | None = None  # the raw dataset (full-image validation reads its images and labels)

    @property
    def config(self) -> dict:
        return resolve_configuration(self.plans, self.configuration)

    @property
    def fold_dir(self) -> Path:
        return self.model_dir / f"fold_{self.fold}"

    @property
    def data_dir(self) -> Path:
        return self.preprocessed_dir / self.config["data_identifier"]


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


class Trainer:
    """nnU-Net's default trainer. Override the ``build_*`` methods to change one part of it."""

    #: written into checkpoints so that nnU-Net's own predictor can load our models
    nnunet_trainer_name = "nnUNetTrainer"

    def __init__(self, setup: TrainingSetup, options: TrainingOptions | None = None,
                 distributed: Distributed | None = None, report: Callable[[str], None] | None = None) -> None:
        self.setup = setup
        self.options = options or TrainingOptions()
        self.dist = distributed or Distributed()
        self.labels = LabelScheme.from_dataset_json(setup.dataset_json)
        self.ignore_label = _ignore_label(setup.dataset_json)
        self._report = report or (lambda text: print(text, flush=True))
        self.warnings: list[str] = []
        self.log = TrainingLog(self.class_names)
        self.best_ema: float | None = None
        # set up by run(), once the device and the folds are known
        self.device: Any = None
        self.loss: Any = None
        self.train_cases: list[str] = []
        self.val_cases: list[str] = []
        self.network: Any = None
        self.model: Any = None       # the network, or its DDP wrapper
        self.optimizer: Any = None
        self.amp = False
        self.scaler: Any = None
        self.augmenter: Any = None
        self.augment_on_device = False
        self.previous_stage_dir: Path | None = None  # a cascade stage: the previous stage's predictions

    # ------------------------------------------------------------------ override points
    @property
    def name(self) -> str:
        """The model folder's trainer part: nnU-Net's name for the default trainer or the variant it
        reproduces (``nnUNetTrainer_2000epochs``), else the custom class's name."""
        if type(self) is Trainer:
            return self.options.variant or "nnUNetTrainer"
        return type(self).__name__

    @property
    def class_names(self) -> list[str]:
        return list(self.labels.names.values())

    def build_network(self):
        """The U-Net of the plans with deep supervision and nnU-Net's He initialisation."""
        config = self.setup.config
        inputs = len(self.setup.dataset_json["channel_names"]) + previous_stage_channels(self.setup)  # a cascade
        net = build_network(config["architecture"], inputs, self.labels.num_outputs, deep_supervision=True)
        _he_init(net)
        return net

    def build_loss(self):
        """``options.loss`` (nnU-Net's Dice + CE by default) on every deep supervision output."""
        batch_dice = bool(self.setup.config.get("batch_dice", False))
        loss = named_loss(self.options.loss, batch_dice, self.labels.is_region_based, self.ignore_label)
        return DeepSupervisionLoss(loss, deep_supervision_weights(len(self.deep_supervision_scales)))

    def build_optimizer(self, parameters):
        import torch
        o = self.options
        return torch.optim.SGD(parameters, lr=o.initial_lr, momentum=o.momentum, weight_decay=o.weight_decay,
                               nesterov=True)

    def learning_rate(self, epoch: int) -> float:
        return poly_lr(self.options.initial_lr, epoch, self.options.epochs)

    def augmentation_settings(self) -> AugmentationSettings:
        settings = default_settings(self.patch_size)
        settings.channel_drop_p = self.options.channel_drop_p
        settings.enabled = self.options.augment
        settings.mirror_axes = tuple(a for a in settings.mirror_axes if a in self.mirror_axes)
        masked = self.setup.config.get("use_mask_for_norm") or []
        settings.masked_channels = tuple(c for c, use in enumerate(masked) if use)
        return settings

    def initial_network(self):
        """The network this run starts from: ``build_network`` under the run's seed."""
        import torch
        torch.manual_seed(self.options.seed)
        return self.build_network()

    # ------------------------------------------------------------------ derived facts
    @property
    def patch_size(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.setup.config["patch_size"])

    @property
    def batch_size(self) -> int:
        return int(self.options.batch_size or self.setup.config["batch_size"])

    @property
    def deep_supervision_scales(self) -> list[list[float]]:
        return deep_supervision_scales(self.setup.config["architecture"]["arch_kwargs"]["strides"])

    @property
    def mirror_axes(self) -> tuple[int, ...]:
        """Axes mirrored in augmentation and allowed at inference (none without mirroring)."""
        return tuple(range(len(self.patch_size))) if self.options.mirroring else ()

    def local_indices(self) -> list[int]:
        """This process's share of the global batch (contiguous; DDP ranks split it)."""
        parts = np.array_split(np.arange(self.batch_size), self.dist.world_size)
        return [int(i) for i in parts[self.dist.rank]]

    # ------------------------------------------------------------------ the run
    def say(self, text: str) -> None:
        if self.dist.is_main:
            self._report(text)

    def run(self, existing: str = "refuse", should_stop: Callable[[], bool] | None = None) -> Path:
        """Train this fold, then validate it on full images. Returns the model folder.

        ``existing`` says what to do when the fold already holds a model: ``refuse`` (an error),
        ``continue`` (from its last checkpoint) or ``overwrite`` (see ``outputs.py``).
        """
        import torch


        o, s = self.options, self.setup
        self._check_run(existing)
        self.device = self._choose_device()
        final = s.fold_dir / ckpt.FINAL
        if existing == "continue" and final.is_file() and not (s.fold_dir / ckpt.LATEST).is_file():
            self.say(f"Fold {s.fold} already finished ({final}); nothing to continue.")
            return s.model_dir
        network = self.initial_network().to(self.device)
        transfer = self._transfer(network) if o.pretrained else None  # checked before anything is written
        self.loss = self.build_loss()
        patients = load_patients(o.patients_file) if o.patients_file else None
        all_cases = PreprocessedCases(s.data_dir).names
        self.train_cases, self.val_cases = fold_cases(s.fold, all_cases, s.preprocessed_dir, o.splits_file,
                                                      patients, o.num_folds)
        self.previous_stage_dir = check_previous_stage(s, [*self.train_cases, *self.val_cases], self.name)
        if self.dist.is_main:
            self._prepare_outputs(existing)
        if transfer is not None:
            self.say(transfer.summary())
        self.network = network
        self.model = self._wrapped(network)
        self.optimizer = self.build_optimizer([p for p in network.parameters() if p.requires_grad])
        amp = o.mixed_precision if o.mixed_precision is not None else self.device.type == "cuda"
        self.amp = bool(amp and self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda") if self.amp else None
        start_epoch = self._continue_from_checkpoint() if existing == "continue" else 0
        if start_epoch == 0 and existing == "continue":
            self.say("No checkpoint to continue from; starting from the beginning.")
        self.say(f"Training {self.name} {s.configuration} fold {s.fold}: {len(self.train_cases)} training / "
                 f"{len(self.val_cases)} validation cases, patch {list(self.patch_size)}, batch {self.batch_size}, "
                 f"epochs {start_epoch}..{o.epochs - 1} x {o.iterations_per_epoch} iterations on {self.device}"
                 f"{f' x {self.dist.world_size} processes' if self.dist.active else ''}.")
        self._train_epochs(start_epoch, should_stop)
        if self.dist.active:
            import torch.distributed as tdist
            tdist.barrier()
        if self.dist.is_main and o.validate and self.val_cases:
            self._validate_full_images()
        return s.model_dir

    # ------------------------------------------------------------------ internals
    def _check_run(self, existing: str) -> None:
        """Refuse what cannot work before anything is computed or written."""
        o = self.options
        refuse_existing([self.setup.fold_dir], existing)
        if o.freeze_stages and not o.pretrained:
            raise MedSegError("--freeze-stages freezes transferred layers; it needs --pretrained.")
        if self.batch_size < self.dist.world_size:
            raise MedSegError(f"Batch size {self.batch_size} is smaller than the {self.dist.world_size} processes; "
                              "use fewer GPUs/processes or a larger batch size.")

    def _choose_device(self):
        import torch

        o = self.options
        device = select_device(o.device) if not self.dist.active or o.device != "auto" else _ddp_device(self.dist)
        if self.dist.active and device.type == "cuda":
            device = torch.device("cuda", self.dist.local_rank)
        return device

    def _prepare_outputs(self, existing: str) -> None:
        """Clear the fold for --overwrite, drop results of the weights being replaced, write the model files."""
        s = self.setup
        if existing == "overwrite":
            removed = clear_fold(s.model_dir, s.fold)
            if removed:
                self.say(f"Overwriting fold {s.fold}: removed {len(removed)} earlier file(s)/folder(s).")
        for path in discard_stale_results(s.model_dir, s.fold):
            self.say(f"Removed {path} (it scored weights this training replaces).")
        self._write_model_files()

    def _wrapped(self, network):
        """The module the training steps call: the network itself, or its DDP wrapper."""
        if not self.dist.active:
            return network
        from torch.nn.parallel import DistributedDataParallel
        return DistributedDataParallel(network, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def _validate_full_images(self) -> None:
        o, s = self.options, self.setup
        summary = validate_fold(s.model_dir, s.fold, self.val_cases, s.preprocessed_dir, s,
                                device=str(self.device), save_probabilities=o.save_probabilities,
                                report=self.say, mirroring=o.validation_mirroring and o.mirroring)
        fg = summary["foreground_mean"].get("Dice")
        self.say(f"Validation of fold {s.fold} (full images): mean foreground Dice {fg:.4f}")

    def _write_model_files(self) -> None:
        s = self.setup
        s.fold_dir.mkdir(parents=True, exist_ok=True)
        write_json(s.model_dir / "plans.json", s.plans)
        write_json(s.model_dir / "dataset.json", s.dataset_json)
        if s.fingerprint is not None:
            write_json(s.model_dir / "dataset_fingerprint.json", s.fingerprint)

    def _streams(self, start_epoch: int):
        o = self.options
        augmenter = Augmenter(self.patch_size, self.augmentation_settings())
        self.augmenter = augmenter
        workers = o.num_workers if o.num_workers is not None else _default_workers()
        self.augment_on_device = self.device.type == "cuda"
        train_sampler = PatchSampler(self._cases(self.train_cases), augmenter.sample_size,
                                     self.patch_size, self.batch_size, o.oversample, o.seed, stream=0)
        start = start_epoch * o.iterations_per_epoch
        train = BatchStream(train_sampler, self.local_indices(), start, augmenter, not self.augment_on_device, o.seed)
        val_loader = None
        if self.val_cases and o.validation_iterations > 0:
            val_sampler = PatchSampler(self._cases(self.val_cases), self.patch_size,
                                       self.patch_size, self.batch_size, o.oversample, o.seed, stream=1)
            val = BatchStream(val_sampler, self.local_indices(), start_epoch * o.validation_iterations, None, False,
                              o.seed)
            val_loader = iter(make_loader(val, min(workers, 1)))
        return iter(make_loader(train, workers)), val_loader

    def _train_epochs(self, start_epoch: int, should_stop) -> None:
        o = self.options
        train_iter, val_iter = self._streams(start_epoch)
        for epoch in range(start_epoch, o.epochs):
            if should_stop and should_stop():
                raise Cancelled(f"Training stopped before epoch {epoch}; continue it with --continue.")
            started = time.time()
            lr = self.learning_rate(epoch)
            set_lr(self.optimizer, lr)
            self.model.train()
            losses = [self._train_step(next(train_iter)) for _ in range(o.iterations_per_epoch)]
            train_loss = self._mean_over_ranks(float(np.mean(losses)))
            check_loss(train_loss, epoch)
            train_seconds = time.time() - started
            val_loss, dice = self._validate_epoch(val_iter, epoch)
            record = self._record(epoch, started, train_loss, val_loss, dice, lr, train_seconds)
            if self.dist.is_main:
                self._end_epoch(record, epoch)

    def _to_device(self, batch):
        import torch
        step, data, seg = batch
        data = data.to(self.device, non_blocking=True)
        seg = seg.to(self.device, non_blocking=True)
        if self.augment_on_device:
            data, seg = augment_batch(self.augmenter, data, seg, step, self.local_indices(), self.options.seed)
        if self.previous_stage_dir is not None:  # a cascade: seg's second channel is the previous stage's map
            rngs = [np.random.default_rng(sample_seed(self.options.seed, step, i, CASCADE_STREAM))
                    for i in self.local_indices()] if self.network.training and self.options.augment else None
            data, seg = with_previous_stage_input(data, seg, self.setup.dataset_json, rngs)
        return data.float(), seg.clamp_min(0).to(torch.int16)

    def _cases(self, names: list[str]) -> PreprocessedCases:
        if self.previous_stage_dir is None:
            return PreprocessedCases(self.setup.data_dir, names)
        return CascadeCases(self.setup.data_dir, names, self.previous_stage_dir)

    def _targets(self, seg):
        targets = downsample_targets(seg, self.deep_supervision_scales)
        if self.labels.is_region_based:
            targets = [labels_to_regions(t, self.labels.regions, self.ignore_label) for t in targets]
        return targets

    def _train_step(self, batch) -> float:
        import torch
        data, seg = self._to_device(batch)
        targets = self._targets(seg)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, enabled=self.amp):
            outputs = self.model(data)
            loss = self.loss(outputs, targets)
        # DDP averages gradients over ranks; weight each rank's mean by its share of the global batch
        scaled = loss * (len(self.local_indices()) * self.dist.world_size / self.batch_size)
        if self.scaler is not None:
            self.scaler.scale(scaled).backward()
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), GRADIENT_CLIP)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            scaled.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), GRADIENT_CLIP)
            self.optimizer.step()
        return float(loss.detach())

    def _validate_epoch(self, val_iter, epoch: int):
        import torch
        if val_iter is None:
            return float("nan"), [float("nan")] * len(self.class_names)
        self.model.eval()
        losses: list[float] = []
        counts: list[torch.Tensor] = []  # (3, classes) per iteration: tp, fp, fn
        with torch.no_grad():
            for _ in range(self.options.validation_iterations):
                data, seg = self._to_device(next(val_iter))
                targets = self._targets(seg)
                with torch.autocast(self.device.type, enabled=self.amp):
                    outputs = self.network(data)
                    losses.append(float(self.loss(outputs, targets)))
                counts.append(torch.stack(self._tp_fp_fn(outputs[0].float(), targets[0])))
        stats = torch.stack(counts).sum(0).to(torch.float64)  # voxel counts: exact in float64
        if self.dist.active:
            import torch.distributed as tdist
            tdist.all_reduce(stats)
        tp, fp, fn = stats.tolist()
        val_loss = self._mean_over_ranks(float(np.mean(losses)))
        dice = [float(2 * a / (2 * a + b + c)) if (2 * a + b + c) > 0 else float("nan")
                for a, b, c in zip(tp, fp, fn)]
        return val_loss, dice

    def _tp_fp_fn(self, logits, target):
        """Per foreground class (or region) voxel counts of the thresholded prediction, over the batch."""
        import torch
        if self.labels.is_region_based:
            pred = logits.sigmoid() > 0.5
            ref = target[:, :len(self.labels.regions)].bool()
            mask = target[:, -1:].bool() if self.ignore_label is not None else torch.ones_like(ref[:, :1])
        else:
            labels = target[:, 0].long()
            mask = (labels != self.ignore_label)[:, None] if self.ignore_label is not None else None
            k = logits.shape[1]
            pred = torch.nn.functional.one_hot(logits.argmax(1), k).movedim(-1, 1)[:, 1:].bool()
            ref = torch.nn.functional.one_hot(labels.clamp(0, k - 1), k).movedim(-1, 1)[:, 1:].bool()
            if mask is None:
                mask = torch.ones_like(ref[:, :1])
        dims = [0] + list(range(2, pred.ndim))
        tp = (pred & ref & mask).sum(dims).cpu()
        fp = (pred & ~ref & mask).sum(dims).cpu()
        fn = (~pred & ref & mask).sum(dims).cpu()
        return tp.double(), fp.double(), fn.double()

    def _mean_over_ranks(self, value: float) -> float:
        if not self.dist.active:
            return value
        import torch
        import torch.distributed as tdist
        t = torch.tensor([value], dtype=torch.float64)
        tdist.all_reduce(t)
        return float(t.item() / self.dist.world_size)

    def _record(self, epoch, started, train_loss, val_loss, dice, lr, train_seconds) -> dict:
        finite = [d for d in dice if not math.isnan(d)]
        mean = float(np.mean(finite)) if finite else float("nan")
        previous = self.log.records[-1].get("ema_fg_dice") if self.log.records else None
        if previous is None or math.isnan(previous):
            ema = mean
        else:
            ema = previous * EMA_OLD_WEIGHT + (1 - EMA_OLD_WEIGHT) * mean
        return {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "pseudo_dice": dice,
                "mean_fg_dice": mean, "ema_fg_dice": ema, "lr": lr, "start_time": started, "end_time": time.time(),
                "epoch_seconds": time.time() - started,
                "iterations_per_second": self.options.iterations_per_epoch / max(train_seconds, 1e-9)}

    def _end_epoch(self, record: dict, epoch: int) -> None:
        o, s = self.options, self.setup
        self.log.add(record)
        self.say(self.log.format_line(record))
        self.log.write(s.fold_dir)
        plot_progress(self.log, s.fold_dir / "progress.png")
        for warning in advise(self.log.records, self.class_names, o.advisor_window):
            if warning not in self.warnings:
                self.warnings.append(warning)
                self.say(f"WARNING: {warning}")
        ema = record["ema_fg_dice"]
        if not math.isnan(ema) and (self.best_ema is None or ema > self.best_ema):
            self.best_ema = ema
            ckpt.save_checkpoint(s.fold_dir / ckpt.BEST, self._checkpoint(epoch))
        last = epoch == o.epochs - 1
        if (epoch + 1) % max(o.save_every, 1) == 0 and not last:
            ckpt.save_checkpoint(s.fold_dir / ckpt.LATEST, self._checkpoint(epoch))
        if last:
            ckpt.save_checkpoint(s.fold_dir / ckpt.FINAL, self._checkpoint(epoch))
            (s.fold_dir / ckpt.LATEST).unlink(missing_ok=True)
            self.say(f"Finished training; model folder {s.model_dir}")

    def _checkpoint(self, epoch: int) -> dict:
        s = self.setup
        return {
            "network_weights": ckpt.plain_state_dict(self.network),
            "optimizer_state": self.optimizer.state_dict(),
            "grad_scaler_state": self.scaler.state_dict() if self.scaler is not None else None,
            "logging": self.log.to_nnunet_logging(),
            "_best_ema": self.best_ema,
            "current_epoch": epoch + 1,
            "init_args": {"plans": s.plans, "configuration": s.configuration, "fold": _fold_value(s.fold),
                          "dataset_json": s.dataset_json, "device": str(self.device)},
            "trainer_name": self.nnunet_trainer_name,
            # nnU-Net writes None for "no mirroring" (its predictor fails on an empty list)
            "inference_allowed_mirroring_axes": list(self.mirror_axes) if self.mirror_axes else None,
            "medseg": {"trainer": f"{type(self).__module__}:{type(self).__qualname__}",
                       "options": _plain(asdict(self.options)),
                       "missing_channels_trained": self.options.channel_drop_p > 0,
                       "channel_drop_p": self.options.channel_drop_p,
                       "class_names": self.class_names, "log_records": _plain(self.log.records),
                       "warnings": list(self.warnings)},
        }

    def _transfer(self, network):
        """Load the pretrained weights by the rules of ``transfer.py`` (refusing before any output)."""
        o = self.options
        return transfer_weights(network, read_pretrained(o.pretrained), len(self.patch_size),
                                self.setup.configuration, o.freeze_stages)

    def _continue_from_checkpoint(self) -> int:
        path = self.setup.fold_dir / ckpt.LATEST
        if not path.is_file():
            path = self.setup.fold_dir / ckpt.FINAL
            if not path.is_file():
                return 0
        data = load_checkpoint(path)
        self.network.load_state_dict(data["network_weights"])
        if data.get("optimizer_state"):
            self.optimizer.load_state_dict(data["optimizer_state"])
        if self.scaler is not None and data.get("grad_scaler_state"):
            self.scaler.load_state_dict(data["grad_scaler_state"])
        epoch = int(data["current_epoch"])
        records = (data.get("medseg") or {}).get("log_records")
        if records is not None:
            self.log = TrainingLog(self.class_names, records)
        else:
            self.log = TrainingLog.from_nnunet_logging(self.class_names, data.get("logging", {}))
        self.log.truncate(epoch)
        self.warnings = list((data.get("medseg") or {}).get("warnings", []))
        self.best_ema = data.get("_best_ema")
        self.say(f"Continuing from {path.name} at epoch {epoch}.")
        return epoch


def _he_init(network, negative_slope: float = 1e-2) -> None:
    """nnU-Net's initialisation: Kaiming normal for convolutions, zero biases."""
    from torch import nn
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            nn.init.kaiming_normal_(module.weight, a=negative_slope)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _ignore_label(dataset_json: dict) -> int | None:
    value = dataset_json.get("labels", {}).get("ignore")
    return int(value) if value is not None else None


def _fold_value(fold: str):
    return int(fold) if str(fold).isdigit() else fold


def _plain(value):
    """JSON-like copy (tuples -> lists, numpy numbers -> floats) so the checkpoint loads safely."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def _default_workers() -> int:
    """Data workers: leave a core for the training loop itself."""
    return max(min((os.cpu_count() or 1) - 1, 8), 0)


def _ddp_device(dist: Distributed):
    import torch
    return torch.device("cuda", dist.local_rank) if torch.cuda.is_available() else torch.device("cpu")
