"""Prediction options (declared once) and device selection."""
from __future__ import annotations

import argparse

import pytest
import torch

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.inference.device import select_device
from chimerax.medseg.inference.options import PredictOptions, add_arguments, from_namespace, parse_device


@pytest.mark.parametrize("text, expected", [("auto", "auto"), ("CPU", "cpu"), (" cuda ", "cuda"),
                                            ("cuda:1", "cuda:1"), ("Cuda:12", "cuda:12"), ("mps", "mps"),
                                            (None, "auto"), ("", "auto")])
def test_device_names_have_one_spelling(text, expected):
    assert parse_device(text) == expected


@pytest.mark.parametrize("text", ["tpu", "cuda:", "cuda:x", "cuda1", "gpu", "cpu:0"])
def test_unknown_device_names_are_refused_with_the_choices(text):
    with pytest.raises(MedSegError, match="cuda:N"):
        parse_device(text)


def test_select_device_resolves_what_this_machine_has():
    assert select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else "cpu")
    assert select_device("auto").type == expected
    assert select_device(torch.device("cpu")) == torch.device("cpu")  # already resolved: kept


def test_cuda_is_refused_unless_this_machine_has_that_gpu():
    if torch.cuda.is_available():
        assert select_device("cuda:0").type == "cuda"
        with pytest.raises(MedSegError, match="CUDA GPU"):
            select_device(f"cuda:{torch.cuda.device_count()}")
    else:
        for name in ("cuda", "cuda:1"):
            with pytest.raises(MedSegError, match="no usable CUDA GPU"):
                select_device(name)


def _parse(argv: list[str]) -> PredictOptions:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return from_namespace(parser.parse_args(["-m", "A", *argv]))


def test_command_line_options_map_onto_the_one_declaration():
    o = _parse(["--folds", "0", "2", "--device", "CUDA:1", "--no-mirroring", "--step", "0.6",
                "--postprocess", "--missing-channels", "T2"])
    assert (o.folds, o.device, o.mirroring, o.step, o.postprocess, o.missing_channels) == (
        ["0", "2"], "cuda:1", False, 0.6, True, ["T2"])
    assert _parse(["--no-tta"]).mirroring is False  # nnU-Net's word, an alias
    assert (o.models, _parse(["-m", "B", "--model", "C"]).models) == (["A"], ["A", "B", "C"])  # -m repeated
    defaults = _parse([])
    assert (defaults.effective_step, defaults.effective_mirroring, defaults.folds) == (0.5, True, None)
    fast = _parse(["--fast"])
    assert (fast.effective_step, fast.effective_mirroring) == (0.75, False)
    assert _parse(["--fast", "--step", "0.5"]).effective_step == 0.5  # an explicit step wins


@pytest.mark.parametrize("argv, message", [(["--step", "0"], "step must be in"), (["--step", "1.5"], "step must be in"),
                                           (["--device", "tpu"], "Unknown device"),
                                           (["--checkpoint", "../x.pth"], "checkpoint must be a file name"),
                                           (["-m", "A"], "given more than once")])
def test_bad_values_are_refused_by_the_one_check(argv, message):
    with pytest.raises(MedSegError, match=message):
        _parse(argv)


def test_unknown_settings_are_an_error_not_ignored():
    with pytest.raises(TypeError):
        PredictOptions(use_mirroring=False)  # type: ignore[call-arg]


def test_postprocessing_is_tri_state_on_the_command_line(tmp_path):
    assert _parse([]).postprocess is None  # the model's own default (v1: on, v2: off)
    assert _parse(["--postprocess"]).postprocess is True
    assert _parse(["--no-postprocess"]).postprocess is False
    assert _parse(["--postprocess", str(tmp_path / "pp.json")]).postprocess == str(tmp_path / "pp.json")
    assert _parse([]).training_label_values is False and _parse(["--training-label-values"]).training_label_values
