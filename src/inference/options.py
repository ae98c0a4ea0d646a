"""How to run a model: every prediction option, declared once.

Both front ends are built from :class:`PredictOptions`: ``medseg predict`` adds one argparse
argument per field (:func:`add_arguments`), and ChimeraX's ``segment`` one keyword per field
(``chimerax_ui.cmd_segment``). Each field's ``metadata`` says how it is typed on the command
line (``kind``), its help text, and its flag; :meth:`PredictOptions.validate` is the one check.
"""
from __future__ import annotations

import argparse
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import MedSegError

DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")  # plus cuda:N
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")

# Fast mode: no mirroring and less tile overlap, but every fold: on the demo model the fold ensemble
# is what keeps fast mode within ~0.97 Dice of full mode (one fold: 0.92); benchmarks/fast_mode_dice.py.
FAST_STEP = 0.75
DEFAULT_STEP = 0.5
ADAPTIVE_THRESHOLD = 0.35  # inference/adaptive.py: a voxel is in doubt below this confidence


def _option(kind: str, help: str, flag: str | None = None) -> dict[str, Any]:
    """Field metadata: ``kind`` is one of models, names, device, flag, no-flag, number, text, path-or-flag."""
    return {"kind": kind, "help": help, "flag": flag}


@dataclass
class PredictOptions:
    """The settings of one prediction run (``None`` = the model's or the mode's default)."""

    models: list[str] = field(default_factory=list, metadata=_option(
        "models", "model name, model folder or model zip; repeat it (-m A -m B) to average the probabilities of "
                  "several configurations of one dataset, as nnUNetv2_ensemble does (a member may be "
                  "MODEL:CONFIGURATION, e.g. 901:2d for a dataset trained here)", "--model"))
    folds: list[str] | None = field(default=None, metadata=_option(
        "names", "folds to ensemble (default: every numbered fold of the model)"))
    device: str = field(default="auto", metadata=_option(
        "device", "auto, cpu, cuda, cuda:N or mps (default auto)"))
    fast: bool = field(default=False, metadata=_option(
        "flag", f"laptop mode: no mirroring, tile step {FAST_STEP} (add folds 0 for one fold)"))
    mirroring: bool | None = field(default=None, metadata=_option(
        "no-flag", "no mirroring test-time augmentation (default: mirroring, unless fast)", "--no-mirroring"))
    step: float | None = field(default=None, metadata=_option(
        "number", f"tile step as a fraction of the patch, in (0, 1] (default {DEFAULT_STEP}; fast {FAST_STEP})"))
    checkpoint: str = field(default="checkpoint_final.pth", metadata=_option(
        "text", "checkpoint file name in each fold"))
    configuration: str | None = field(default=None, metadata=_option(
        "text", "configuration, when the model path holds several (3d_cascade_fullres: a cascade, see "
                "--prev-stage-predictions)"))
    postprocess: bool | str | None = field(default=None, metadata=_option(
        "path-or-flag", "apply the model's postprocessing.json (or the given file); --no-postprocess: none "
                        "(default: as the model's nnU-Net does: v1 models apply theirs, v2 models none)"))
    adaptive: bool = field(default=False, metadata=_option(
        "flag", "each tile's passes in stages: a survey (one pass per fold; two for one fold), then each fold's "
                "mirrorings doubled while the tile's labels are in doubt (near the full ensemble's labels for a "
                "fraction of the passes)"))
    adaptive_threshold: float = field(default=ADAPTIVE_THRESHOLD, metadata=_option(
        "number", f"with --adaptive: a voxel is in doubt when the confidence that more passes keep its "
                  f"label (from its passes' margin and spread) is below this, in (0, 1) (default "
                  f"{ADAPTIVE_THRESHOLD}; higher = more passes, closer to the full ensemble)"))
    training_label_values: bool = field(default=False, metadata=_option(
        "flag", "write the label values the model was trained with, not those its field uses (the brats models: "
                "BraTS's 2 edema, 1 necrosis, 4 enhancing tumour by default; nnU-Net's are 1, 2, 3)"))
    missing_channels: list[str] = field(default_factory=list, metadata=_option(
        "names", "channels the input lacks (only for models trained with channel dropout)"))
    roi_subset: list[str] = field(default_factory=list, metadata=_option(
        "names", "TotalSegmentator models: only these structures, running only the parts that hold them, "
                 "inside the box its coarse model finds around them (as TotalSegmentator's --roi_subset)"))
    force_split: bool = field(default=False, metadata=_option(
        "flag", "TotalSegmentator models: predict the image in three overlapping slabs along z, one after another, "
                "for less memory (as TotalSegmentator's --force_split; its multi-part models split images of more "
                "than 512x512x900 voxels anyway); needs at least 58 slices at the model's spacing"))
    statistics: bool = field(default=False, metadata=_option(
        "flag", "also write CASE_statistics.json: per structure its volume (mm3) and the mean and std of the "
                "image inside it (as TotalSegmentator's statistics.json)"))
    split_classes: bool = field(default=False, metadata=_option(
        "flag", "also write one mask per structure, CASE/<structure>.nii.gz, beside the multi-label map"))

    def validate(self) -> PredictOptions:
        """Check every value; raises MedSegError naming the option. Returns self."""
        self.device = parse_device(self.device)
        if self.step is not None and not 0 < self.step <= 1:
            raise MedSegError(f"step must be in (0, 1] (a fraction of the patch size); got {self.step}.")
        if self.folds is not None:
            self.folds = [str(f) for f in self.folds]
            if not self.folds:
                raise MedSegError("folds: name at least one fold (e.g. 0), or leave it out for all.")
        if not 0 < self.adaptive_threshold < 1:
            raise MedSegError("adaptive threshold must be in (0, 1) (a confidence); "
                              f"got {self.adaptive_threshold}.")
        if not self.checkpoint or "/" in self.checkpoint or "\\" in self.checkpoint:
            raise MedSegError(f"checkpoint must be a file name inside each fold folder; got {self.checkpoint!r}.")
        self.missing_channels = list(self.missing_channels or [])
        self.models = [str(m).strip() for m in self.models or []]
        repeated = sorted({m for m in self.models if self.models.count(m) > 1})
        if repeated:
            raise MedSegError(f"Model {repeated[0]} is given more than once; an ensemble needs different models "
                              "(e.g. the 2d and 3d_fullres configurations of one dataset).")
        self.roi_subset = list(dict.fromkeys(self.roi_subset or []))  # once each, in the order given
        return self

    @property
    def effective_step(self) -> float:
        return self.step if self.step is not None else (FAST_STEP if self.fast else DEFAULT_STEP)

    @property
    def effective_mirroring(self) -> bool:
        return self.mirroring if self.mirroring is not None else not self.fast


def parse_device(name: str | None) -> str:
    """A device name in its one spelling (lower case); refuses anything else."""
    text = (name or "auto").strip().lower()
    if not _DEVICE.match(text):
        raise MedSegError(f"Unknown device {name!r}; use one of {', '.join(DEVICE_NAMES)} or cuda:N (e.g. cuda:1).")
    return text


def option_fields() -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, metadata) of every declared option, in declaration order."""
    for f in fields(PredictOptions):
        yield f.name, dict(f.metadata)


def cli_flag(name: str, meta: dict[str, Any]) -> str:
    return meta["flag"] or "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One argparse argument per option (dest = the field name)."""
    defaults = PredictOptions()
    for name, meta in option_fields():
        flag, kind, help_text = cli_flag(name, meta), meta["kind"], meta["help"]
        default = getattr(defaults, name)
        if kind == "models":  # the model(s) themselves: required, -m repeated for an ensemble
            parser.add_argument("-m", flag, dest=name, action="append", required=True, metavar="MODEL",
                                help=help_text)
        elif kind == "names":
            parser.add_argument(flag, dest=name, nargs="+", default=default, metavar="NAME", help=help_text)
        elif kind == "flag":
            parser.add_argument(flag, dest=name, action="store_true", help=help_text)
        elif kind == "no-flag":  # --no-tta: the name nnU-Net users know, kept as an alias
            parser.add_argument(flag, "--no-tta", dest=name, action="store_const", const=False, default=None,
                                help=help_text)
        elif kind == "number":
            parser.add_argument(flag, dest=name, type=float, default=default, help=help_text)
        elif kind == "path-or-flag":  # tri-state: FILE or the model's own (--flag), none (--no-flag), default
            parser.add_argument(flag, dest=name, nargs="?", const=True, default=default, metavar="FILE",
                                help=help_text)
            parser.add_argument("--no-" + flag.removeprefix("--"), dest=name, action="store_const", const=False,
                                help=f"the opposite of {flag}: none, whatever the model's default")
        else:  # text, device; -c as nnUNetv2_predict spells the configuration
            short = ["-c"] if name == "configuration" else []
            parser.add_argument(flag, *short, dest=name, default=default, help=help_text)


def from_namespace(args: argparse.Namespace) -> PredictOptions:
    """The options of a parsed ``medseg predict`` command line, validated."""
    return from_mapping(vars(args))


def from_mapping(values: dict[str, Any]) -> PredictOptions:
    """Options from any mapping of field names (others ignored; ``None`` for a list = default), validated."""
    known = {name for name, _ in option_fields()}
    given = {k: v for k, v in values.items() if k in known}
    for name in ("missing_channels", "models", "roi_subset"):
        if given.get(name) is None:
            given.pop(name, None)
    if isinstance(given.get("models"), str):  # one model
        given["models"] = [given["models"]]
    if isinstance(given.get("folds"), Sequence) and not isinstance(given["folds"], str):
        given["folds"] = list(given["folds"])
    return PredictOptions(**given).validate()
