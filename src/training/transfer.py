"""Transfer learning by nnU-Net's rules: start from a pretrained model's weights.

The rules (nnU-Net's ``load_pretrained_weights``, plus what it leaves to chance):
- The target is trained with the pretrained model's plans carried over (``medseg plan TARGET
  --plans-from MODEL``), so the networks are the same.
- Every tensor except the segmentation heads (``.seg_layers.``) is loaded and must exist with the
  same shape on both sides; otherwise one error names the first layer that differs.
- The heads are never transferred (the labels' meaning differs even where the count agrees).
- nnU-Net v1 models (Generic_UNet, ``seg_outputs`` heads) follow the same rules. Their plans carried over
  describe the same Generic_UNet, which this package builds under v1's own state-dict keys
  (network/generic_unet.py), so every key maps onto the network one to one; into any other network
  (planned afresh) a v1 model is refused, naming both.
- One difference is tolerated: the first convolution's weight when only the number of input
  channels differs (e.g. a 4-channel MRI model for a 1-channel dataset); it keeps its fresh
  initialisation, and is reported.
- A model of another dimensionality (2D for 3D) is refused before anything else.
- ``freeze_stages`` freezes only transferred layers and refuses to freeze a fresh one.

A pretrained model reaches these rules as a :class:`PretrainedModel` (a state dict + its plans):
:func:`read_pretrained` makes one from a model folder (v2 or v1), a checkpoint or an installed name.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MedSegError
from ..models.checkpoint import load_checkpoint
from ..models.model_folder import open_model_folder, resolve_configuration
from ..models.registry import resolve_model

HEAD_MARKER = ".seg_layers."
V1_HEADS = "seg_outputs."          # nnU-Net v1's Generic_UNet: every deep-supervision head
V1_MARKER = "conv_blocks_context."  # a key only v1's Generic_UNet has
PLANS_HINT = ("Transfer needs the pretrained model's network: plan the target with its plans "
              "(`medseg plan TARGET --plans-from MODEL`) and train with those plans (`--plans NAME`).")


@dataclass
class PretrainedModel:
    """A pretrained network's weights and, when known, its plans and configuration."""

    weights: dict
    name: str
    plans: dict | None = None
    configuration: str | None = None

    @property
    def dimensionality(self) -> int | None:
        """2 or 3: from the configuration's patch size, else from the convolution weights."""
        if self.plans is not None and self.configuration is not None:
            try:
                return len(resolve_configuration(self.plans, self.configuration)["patch_size"])
            except (MedSegError, KeyError):
                pass
        convs = [v.ndim - 2 for k, v in self.weights.items() if k.endswith("weight") and v.ndim >= 4]
        return convs[0] if convs else None


@dataclass
class TransferReport:
    """What was loaded, what was left fresh and what was frozen."""

    source: str
    loaded: list[str] = field(default_factory=list)
    heads: list[str] = field(default_factory=list)
    fresh_input: list[str] = field(default_factory=list)
    input_channels: tuple[int, int] | None = None   # (pretrained, this network) when they differ
    frozen: int = 0
    frozen_stages: int = 0
    distinct: tuple[int, int] = (0, 0)  # distinct tensors (loaded, heads): the U-Net names some twice

    def summary(self) -> str:
        text = (f"Pretrained weights from {self.source}: {self.distinct[0]} tensors loaded; "
                f"{self.distinct[1]} segmentation-head tensors left new (never transferred)")
        if self.fresh_input and self.input_channels is not None:  # set together by plan_transfer
            theirs, ours = self.input_channels
            text += (f"; the first convolution left new ({theirs} input channel(s) in the pretrained model, "
                     f"{ours} here)")
        if self.frozen:
            text += f"; first {self.frozen_stages} encoder stage(s) frozen ({self.frozen} tensors)"
        return text + "."


def read_pretrained(source: str | os.PathLike) -> PretrainedModel:
    """The weights and plans of a v2 model folder (fold 'all', else the first fold), a checkpoint
    file, or an installed model's name."""
    path = Path(source).expanduser()
    if path.is_file() and path.suffix == ".pth":
        data = load_checkpoint(path)
        init = data.get("init_args") or {}
        return PretrainedModel(data["network_weights"], str(source), init.get("plans"), init.get("configuration"))
    if not path.exists():
        path = resolve_model(str(source))
    folder = open_model_folder(path)
    fold = "all" if "all" in folder.folds else folder.select_folds(None)[0]
    weights = load_checkpoint(folder.checkpoint_path(fold))["network_weights"]
    return PretrainedModel(weights, str(source), folder.plans, folder.configuration_name)


def check_dimensionality(model: PretrainedModel, dimensionality: int, configuration: str) -> None:
    theirs = model.dimensionality
    if theirs is not None and theirs != dimensionality:
        what = f" ({model.configuration})" if model.configuration else ""
        raise MedSegError(f"The pretrained model {model.name} is {theirs}D{what}, but {configuration} is "
                          f"{dimensionality}D: transfer needs a model of the same dimensionality. Train a "
                          f"{theirs}D configuration, or start from a {dimensionality}D model.")


def is_head(key: str) -> bool:
    return HEAD_MARKER in key or key.startswith(V1_HEADS)


def _unet(network):
    """The U-Net behind a network (v1's GenericUNet holds ours under v1's names)."""
    return getattr(network, "unet", network)


def first_convolution(network):
    """The convolution that reads the input (the stem of residual encoders, else stage 0's first)."""
    from torch import nn
    for module in _unet(network).encoder.modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d)):
            return module
    raise MedSegError("The network has no convolution to receive the input.")


def _names_of(network, tensor) -> list[str]:
    """Every state-dict name of one tensor (the U-Net reaches some modules by several paths)."""
    return [k for k, v in network.state_dict(keep_vars=True).items() if v is tensor]


def plan_transfer(network, model: PretrainedModel) -> TransferReport:
    """Decide tensor by tensor what is loaded; refuse any difference the rules do not allow."""
    own = network.state_dict()
    _check_generation(own, model)
    input_weight = set(_names_of(network, first_convolution(network).weight))
    report = TransferReport(model.name)
    for key, tensor in own.items():
        if is_head(key):
            report.heads.append(key)
            continue
        theirs = model.weights.get(key)
        if theirs is None:
            raise MedSegError(f"The pretrained model {model.name} has no layer {key} (this network has it): the "
                              f"networks differ. {PLANS_HINT}")
        if tuple(theirs.shape) == tuple(tensor.shape):
            report.loaded.append(key)
        elif key in input_weight and _differs_in_input_channels(theirs.shape, tensor.shape):
            report.fresh_input.append(key)
            report.input_channels = (int(theirs.shape[1]), int(tensor.shape[1]))
        else:
            raise MedSegError(f"Layer {key} differs: {tuple(theirs.shape)} in the pretrained model {model.name}, "
                              f"{tuple(tensor.shape)} in this network. {PLANS_HINT}")
    extra = [k for k in model.weights if k not in own and not is_head(k)]
    if extra:
        raise MedSegError(f"The pretrained model {model.name} has a layer this network lacks ({extra[0]}): the "
                          f"networks differ. {PLANS_HINT}")
    variables = network.state_dict(keep_vars=True)
    report.distinct = (len({id(variables[k]) for k in report.loaded}), len({id(variables[k]) for k in report.heads}))
    return report


def _check_generation(own: dict, model: PretrainedModel) -> None:
    """A v1 Generic_UNet and a v2 U-Net name their layers differently: say so, rather than a missing layer."""
    theirs_v1 = any(k.startswith(V1_MARKER) for k in model.weights)
    ours_v1 = any(k.startswith(V1_MARKER) for k in own)
    if theirs_v1 != ours_v1:
        kinds = {True: "nnU-Net v1's Generic_UNet", False: "an nnU-Net v2 U-Net"}
        raise MedSegError(f"The pretrained model {model.name} is {kinds[theirs_v1]}, this network {kinds[ours_v1]}: "
                          f"their layers differ. {PLANS_HINT}")


def _differs_in_input_channels(theirs, ours) -> bool:
    return len(theirs) == len(ours) and theirs[0] == ours[0] and tuple(theirs[2:]) == tuple(ours[2:])


def transfer_weights(network, model: PretrainedModel, dimensionality: int, configuration: str,
                     freeze_stages: int = 0) -> TransferReport:
    """Apply the rules to ``network`` (checked fully before any weight changes)."""
    check_dimensionality(model, dimensionality, configuration)
    report = plan_transfer(network, model)
    frozen_modules = encoder_stages(network, freeze_stages)
    check_freezable(network, frozen_modules, report)
    own = network.state_dict()
    own.update({k: model.weights[k] for k in report.loaded})
    network.load_state_dict(own)
    report.frozen = freeze(frozen_modules)
    report.frozen_stages = freeze_stages
    return report


def encoder_stages(network, count: int) -> list:
    """The modules ``--freeze-stages count`` freezes: the first ``count`` stages (and a stem)."""
    encoder = _unet(network).encoder
    stages = len(encoder.stages)
    if not 0 <= count <= stages:
        raise MedSegError(f"Cannot freeze {count} stages: the encoder has {stages}.")
    modules = list(encoder.stages)[:count]
    if count and getattr(encoder, "stem", None) is not None:
        modules.insert(0, encoder.stem)
    return modules


def check_freezable(network, modules: list, report: TransferReport) -> None:
    """Refuse to freeze a tensor that was not transferred: it would stay at its random start."""
    names = set(report.loaded)
    loaded = {id(t) for k, t in network.state_dict(keep_vars=True).items() if k in names}
    for module in modules:
        for parameter in module.parameters():
            if id(parameter) in loaded:
                continue
            key = _names_of(network, parameter)[0]
            why = ""
            if report.input_channels:
                theirs, ours = report.input_channels
                why = f" (the pretrained model has {theirs} input channel(s), this dataset {ours})"
            raise MedSegError(f"Cannot freeze {key}: it was not transferred{why}, so freezing would keep it "
                              "at its random start. Freeze fewer stages (the first convolution sits in stage 0), "
                              "or train without --freeze-stages.")


def freeze(modules: list) -> int:
    count = 0
    for module in modules:
        for parameter in module.parameters():
            parameter.requires_grad_(False)
            count += 1
    return count
