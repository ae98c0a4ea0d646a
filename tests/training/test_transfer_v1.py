"""Transfer learning from an nnU-Net v1 pretrained model, by the same rules as from a v2 one.

The source is a real v1 model made by nnunet 1.7.1 (tests/data/nnunet_v1/Task902_V1MRI.zip: Generic_UNet,
2 channels, anisotropic plans), installed with the real install path. Its plans are carried over to a
tiny target dataset, and real training steps run from its weights.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch

from training_helpers import plan_tiny_dataset

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.images import read_case
from chimerax.medseg.inference.predictor import Predictor
from chimerax.medseg.models.checkpoint import load_checkpoint
from chimerax.medseg.models.install import install_model
from chimerax.medseg.network.build import build_network
from chimerax.medseg.planning.run import plan_dataset
from chimerax.medseg.training.run import train
from chimerax.medseg.training.trainer import TrainingOptions
from chimerax.medseg.training.transfer import read_pretrained, transfer_weights

V1_ZIP = Path(__file__).resolve().parents[1] / "data" / "nnunet_v1" / "Task902_V1MRI.zip"


@pytest.fixture(scope="module")
def v1_model(tmp_path_factory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDSEG_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield install_model("v1mri", V1_ZIP)


@pytest.fixture(scope="module")
def carried(v1_model, tmp_path_factory) -> dict:
    """A 2-channel, 2-label target planned with the v1 model's plans carried over."""
    target = plan_tiny_dataset(tmp_path_factory.mktemp("target"), dataset_id=46, name="FromV1", num_labels=2,
                               cases=4, channels=("T1", "T2"))
    result = plan_dataset(str(target["raw"]), configurations=["3d_fullres"], num_processes=1, verify=False,
                          foreground_samples=1e4, output=str(target["preprocessed"]), plans_from=str(v1_model))
    return {**target, "carried": result["plans"]}


def _v1_network(source, channels: int = 2, outputs: int = 3, **changes):
    arch = copy.deepcopy(source.plans["configurations"][source.configuration]["architecture"])
    arch["arch_kwargs"].update(changes)
    torch.manual_seed(3)
    return build_network(arch, channels, outputs, deep_supervision=True)


def test_carried_v1_plans_have_a_clean_name_and_keep_v1s_network(v1_model, carried):
    source = read_pretrained(v1_model)
    plans = carried["carried"]
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", plans["plans_name"]), plans["plans_name"]
    assert plans["plans_name"].endswith("_from_" + source.plans["dataset_name"])
    config = plans["configurations"]["3d_fullres"]
    assert config["architecture"] == source.plans["configurations"]["3d_fullres"]["architecture"]
    assert "normalize_after_resampling" not in config and "average_probabilities" not in config


def test_every_v1_tensor_but_the_heads_is_loaded_even_when_the_labels_agree(v1_model):
    source = read_pretrained(v1_model)
    network = _v1_network(source)  # the source's network, with as many outputs as it has
    fresh = {k: v.clone() for k, v in network.state_dict().items()}
    report = transfer_weights(network, source, 3, "3d_fullres")
    after = network.state_dict()
    assert report.heads and all(k.startswith("seg_outputs.") for k in report.heads)
    assert len(report.loaded) + len(report.heads) == len(after) == len(source.weights)
    assert all(torch.equal(after[k], source.weights[k]) for k in report.loaded)
    for key in report.heads:
        assert after[key].shape == source.weights[key].shape and torch.equal(after[key], fresh[key])


def test_v1_transfer_refuses_what_the_rules_refuse(v1_model, tmp_path):
    source = read_pretrained(v1_model)
    with pytest.raises(MedSegError, match=r"Layer conv_blocks_context\.0\.blocks\.0\.conv\.weight differs"):
        transfer_weights(_v1_network(source, base_num_features=8), source, 3, "3d_fullres")
    one_channel = _v1_network(source, channels=1)
    with pytest.raises(MedSegError, match=r"Cannot freeze conv_blocks_context\.0\.blocks\.0\.conv\.weight"):
        transfer_weights(one_channel, source, 3, "3d_fullres", freeze_stages=1)
    assert transfer_weights(one_channel, source, 3, "3d_fullres").input_channels == (2, 1)
    v2 = plan_tiny_dataset(tmp_path, dataset_id=47, name="Fresh", cases=2, channels=("T1", "T2"))["plans"]
    v2_net = build_network(v2["configurations"]["3d_fullres"]["architecture"], 2, 3, deep_supervision=True)
    with pytest.raises(MedSegError, match="is nnU-Net v1's Generic_UNet, this network an nnU-Net v2 U-Net"):
        transfer_weights(v2_net, source, 3, "3d_fullres")
    with pytest.raises(MedSegError, match="is 3D"):
        transfer_weights(_v1_network(source, conv_op="torch.nn.Conv2d", norm_op="torch.nn.InstanceNorm2d",
                                     conv_kernel_sizes=[[3, 3]] * 4, pool_op_kernel_sizes=[[2, 2]] * 3),
                         source, 2, "2d")


def test_training_from_a_v1_model_freezes_exactly_the_transferred_stages(v1_model, carried, tmp_path):
    options = TrainingOptions(epochs=1, iterations_per_epoch=2, validation_iterations=1, num_workers=0,
                              device="cpu", validate=False, pretrained=str(v1_model), freeze_stages=1)
    said: list[str] = []
    model = train(str(carried["raw"]), "3d_fullres", ["0"], options, plans_name=carried["carried"]["plans_name"],
                  output=tmp_path / "out", preprocessed=carried["preprocessed"], report=said.append)
    assert any("first 1 encoder stage(s) frozen" in s and "never transferred" in s for s in said)
    before = read_pretrained(v1_model).weights
    after = load_checkpoint(model / "fold_0" / "checkpoint_final.pth")["network_weights"]
    frozen = [k for k in after if k.startswith("conv_blocks_context.0.")]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    learning = [k for k in after if k.startswith(("conv_blocks_context.1.", "conv_blocks_localization."))
                and k.endswith("conv.weight")]
    assert learning and all(not torch.equal(before[k], after[k]) for k in learning)
    heads = [k for k in after if k.startswith("seg_outputs.")]
    assert heads and all(not torch.equal(before[k], after[k]) for k in heads)
    # the model trained from v1's network runs like any model
    case = read_case(sorted((carried["raw"] / "imagesTr").glob("*_0000.nii.gz"))[:1] +
                     sorted((carried["raw"] / "imagesTr").glob("*_0001.nii.gz"))[:1])
    labels = Predictor.from_folder(model, folds=["0"], mirroring=False).predict(case).labels
    assert labels.shape == case.shape
