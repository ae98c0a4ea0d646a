"""DDP: two CPU processes (gloo, launched by torchrun) equal one process with the same total batch."""
import json
import subprocess
import sys

from training_helpers import cli_env, run_cli, train_args

from chimerax.medseg.models.checkpoint import load_checkpoint


def test_two_processes_equal_one(tiny_data, tmp_path):
    # batch Dice (one Dice over the global batch) is the case that needs the processes to share sums
    plans = json.loads((tiny_data["preprocessed"] / "nnUNetPlans.json").read_text())
    plans["configurations"]["3d_fullres"]["batch_dice"] = True
    (tiny_data["preprocessed"] / "BatchDicePlans.json").write_text(json.dumps(plans))
    common = ["--epochs", "2", "--iterations", "3", "--val-iterations", "1", "--no-validation", "--batch-size", "2",
              "--plans", "BatchDicePlans"]
    single = run_cli(train_args({**tiny_data, "results": tmp_path / "single"}, *common))
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "chimerax.medseg.cli", *train_args({**tiny_data, "results": tmp_path / "ddp"}, *common)],
                         env=cli_env(), capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "x 2 processes" in ddp.stdout
    folder = "nnUNetTrainer__BatchDicePlans__3d_fullres/fold_0/checkpoint_final.pth"
    a = load_checkpoint(tmp_path / "single" / folder)
    b = load_checkpoint(tmp_path / "ddp" / folder)
    worst = max(float((a["network_weights"][k] - b["network_weights"][k]).abs().max()) for k in a["network_weights"])
    moved = max(float((a["network_weights"][k]).abs().max()) for k in a["network_weights"])
    assert worst < 1e-5 * max(moved, 1), f"DDP and single-process weights differ by {worst}"
    losses_a, losses_b = a["logging"]["train_losses"], b["logging"]["train_losses"]
    assert all(abs(x - y) < 1e-4 for x, y in zip(losses_a, losses_b))
