"""Transfer learning by nnU-Net's rules, on real tiny networks: heads never transferred, every other
tensor required, the first mismatching layer named, a fresh first convolution never frozen, another
dimensionality refused; frozen parameters stay put through real training steps while the rest learn."""
import copy
import json

import pytest
import torch

from training_helpers import plan_tiny_dataset, run_cli, train_args

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.models.checkpoint import load_checkpoint
from chimerax.medseg.network.build import build_network
from chimerax.medseg.planning.run import plan_dataset
from chimerax.medseg.training.run import train
from chimerax.medseg.training.trainer import TrainingOptions
from chimerax.medseg.training.transfer import PretrainedModel, read_pretrained, transfer_weights


def _network(plans: dict, configuration: str = "3d_fullres", channels: int = 1, outputs: int = 3, **changes):
    arch = copy.deepcopy(plans["configurations"][configuration]["architecture"])
    arch["arch_kwargs"].update(changes)
    torch.manual_seed(7)
    return build_network(arch, channels, outputs, deep_supervision=True)


def _cloned(network) -> dict:
    return {k: v.detach().clone() for k, v in network.state_dict().items()}


def test_every_tensor_but_the_heads_is_loaded_even_when_the_labels_agree(trained_model):
    source = read_pretrained(trained_model)
    network = _network(source.plans)  # same network and the same number of outputs as the source
    fresh = _cloned(network)
    report = transfer_weights(network, source, 3, "3d_fullres")
    after = network.state_dict()
    assert report.heads and all(".seg_layers." in k for k in report.heads)
    assert len(report.loaded) + len(report.heads) == len(after) and not report.fresh_input
    assert all(torch.equal(after[k], source.weights[k]) for k in report.loaded)
    for key in report.heads:  # same shape, still never copied
        assert after[key].shape == source.weights[key].shape and torch.equal(after[key], fresh[key])
        assert not torch.equal(after[key], source.weights[key])


def test_a_different_network_is_refused_naming_its_first_mismatching_layer(trained_model):
    source = read_pretrained(trained_model)
    network = _network(source.plans, features_per_stage=[4, 8, 32])
    before = _cloned(network)
    with pytest.raises(MedSegError) as error:
        transfer_weights(network, source, 3, "3d_fullres")
    text = str(error.value)
    assert "Layer encoder.stages.2.0.convs.0.conv.weight differs: (16, 8, 3, 3, 3) in the pretrained" in text
    assert "(32, 8, 3, 3, 3) in this network" in text and "--plans-from" in text
    assert all(torch.equal(v, before[k]) for k, v in network.state_dict().items())  # nothing half-loaded
    deeper = _network(source.plans, n_stages=4, features_per_stage=[4, 8, 16, 16], kernel_sizes=[[3, 3, 3]] * 4,
                      strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]], n_conv_per_stage=[2] * 4,
                      n_conv_per_stage_decoder=[2] * 3)
    with pytest.raises(MedSegError, match="has no layer encoder.stages.3"):
        transfer_weights(deeper, source, 3, "3d_fullres")


def test_a_first_convolution_left_new_for_other_channels_is_never_frozen(trained_model):
    source = read_pretrained(trained_model)
    network = _network(source.plans, channels=2)
    with pytest.raises(MedSegError) as error:
        transfer_weights(network, source, 3, "3d_fullres", freeze_stages=1)
    assert "Cannot freeze encoder.stages.0.0.convs.0.conv.weight: it was not transferred" in str(error.value)
    assert "1 input channel(s), this dataset 2" in str(error.value)
    report = transfer_weights(network, source, 3, "3d_fullres")
    assert report.input_channels == (1, 2) and "encoder.stages.0.0.convs.0.conv.weight" in report.fresh_input
    assert "the first convolution left new (1 input channel(s) in the pretrained model, 2 here)" in report.summary()
    distinct = {id(p) for p in network.parameters()}  # every parameter once, however many names it has
    assert sum(report.distinct) == len(distinct) - 1  # all but the first convolution's weight
    assert all(p.requires_grad for p in network.parameters())


def test_a_model_of_another_dimensionality_is_refused(trained_model):
    source = read_pretrained(trained_model)
    flat = _network(source.plans, "2d")
    with pytest.raises(MedSegError, match=r"is 3D \(3d_fullres\), but 2d is 2D"):
        transfer_weights(flat, source, 2, "2d")
    # a bare state dict (as another model format's reader gives it) is judged by its convolutions
    bare = PretrainedModel(source.weights, "bare weights")
    with pytest.raises(MedSegError, match="bare weights is 3D, but 2d is 2D"):
        transfer_weights(flat, bare, 2, "2d")
    assert transfer_weights(_network(source.plans), bare, 3, "3d_fullres").loaded


def test_train_with_carried_plans_freezes_exactly_the_transferred_stages(trained_model, tmp_path):
    target = plan_tiny_dataset(tmp_path / "target", dataset_id=42, name="One", num_labels=1, cases=4)
    carried = plan_dataset(str(target["raw"]), configurations=["3d_fullres"], num_processes=1, verify=False,
                           foreground_samples=1e4, output=str(target["preprocessed"]), plans_from=str(trained_model))
    plans_name = carried["plans"]["plans_name"]
    said = []
    options = TrainingOptions(epochs=2, iterations_per_epoch=3, validation_iterations=1, num_workers=0, device="cpu",
                              validate=False, pretrained=str(trained_model), freeze_stages=2)
    model = train(str(target["raw"]), "3d_fullres", ["0"], options, plans_name=plans_name, output=tmp_path / "out",
                  preprocessed=target["preprocessed"], report=said.append)
    assert model.name == f"nnUNetTrainer__{plans_name}__3d_fullres"
    assert any("first 2 encoder stage(s) frozen" in s and "never transferred" in s for s in said)
    before = load_checkpoint(trained_model / "fold_0" / "checkpoint_final.pth")["network_weights"]
    after = load_checkpoint(model / "fold_0" / "checkpoint_final.pth")["network_weights"]
    frozen = [k for k in after if k.startswith(("encoder.stages.0.", "encoder.stages.1."))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    learning = [k for k in after if k.startswith(("encoder.stages.2.", "decoder.stages.")) and k.endswith("weight")]
    assert learning and all(not torch.equal(before[k], after[k]) for k in learning)
    head = "decoder.seg_layers.1.weight"
    assert before[head].shape[0] == 3 and after[head].shape[0] == 2


def test_cli_refuses_before_writing_anything(trained_model, tmp_path):
    two = plan_tiny_dataset(tmp_path / "two", dataset_id=45, name="TwoCh", cases=4, channels=("T1", "T2"))
    data = {**two, "results": tmp_path / "out"}
    result = run_cli(train_args(data, "--pretrained", str(trained_model), "--freeze-stages", "1", "--epochs", "1"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "Cannot freeze encoder.stages.0.0.convs.0.conv.weight" in result.stderr
    plans_file = two["preprocessed"] / "nnUNetPlans.json"
    plans = json.loads(plans_file.read_text())
    plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["features_per_stage"] = [4, 8, 24]
    plans_file.write_text(json.dumps(plans))
    result = run_cli(train_args(data, "--pretrained", str(trained_model), "--epochs", "1"))
    assert result.returncode == 1 and "Layer encoder.stages.2.0.convs.0.conv.weight differs" in result.stderr
    result = run_cli(train_args(data, "--freeze-stages", "1", "--epochs", "1"))
    assert result.returncode == 1 and "needs --pretrained" in result.stderr
    assert not (tmp_path / "out").exists() and not (two["preprocessed"] / "splits_final.json").exists()
