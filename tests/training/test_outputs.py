"""Safe outputs: a trained fold is never replaced silently; --continue / --overwrite; validation
summaries never outlive the weights they scored."""
import shutil

from training_helpers import run_cli, train_args

from chimerax.medseg.models.checkpoint import load_checkpoint

FOLDER = "nnUNetTrainer__nnUNetPlans__3d_fullres"
QUICK = ("--epochs", "1", "--iterations", "2", "--val-iterations", "1")


def _copy_trained(trained_model, tmp_path):
    """The trained fixture model (fold 0 with its validation) plus two cross-validation summaries."""
    results = tmp_path / "results"
    model = results / FOLDER
    shutil.copytree(trained_model, model)
    for folds in ("0_1", "1_2"):
        shutil.copytree(model / "fold_0" / "validation", model / f"crossval_results_folds_{folds}")
    return results, model


def _state(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_trained_fold_is_refused_then_overwritten_without_stale_summaries(tiny_data, trained_model, tmp_path):
    results, model = _copy_trained(trained_model, tmp_path)
    data = {**tiny_data, "results": results}
    assert (model / "fold_0" / "validation" / "summary.json").is_file()
    before = _state(model)
    refused = run_cli(train_args(data, *QUICK))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "already holds a finished model (checkpoint_final.pth)" in refused.stderr
    assert "--continue" in refused.stderr and "--overwrite" in refused.stderr
    assert _state(model) == before  # nothing touched

    finished = run_cli(train_args(data, *QUICK, "--continue"))
    assert finished.returncode == 0 and "already finished" in finished.stdout and _state(model) == before

    old_epochs = load_checkpoint(model / "fold_0" / "checkpoint_final.pth")["current_epoch"]
    replaced = run_cli(train_args(data, *QUICK, "--overwrite", "--no-validation"))
    assert replaced.returncode == 0, replaced.stderr
    assert load_checkpoint(model / "fold_0" / "checkpoint_final.pth")["current_epoch"] == 1 != old_epochs
    # the old validation scored the old weights: gone, and so is the cross-validation that included fold 0
    assert not (model / "fold_0" / "validation").exists()
    assert not (model / "crossval_results_folds_0_1").exists()
    assert (model / "crossval_results_folds_1_2" / "summary.json").is_file()
    assert not (model / "fold_0" / "checkpoint_best.pth").exists() or \
        load_checkpoint(model / "fold_0" / "checkpoint_best.pth")["current_epoch"] == 1


def test_overwrite_and_continue_are_exclusive(tiny_data, tmp_path):
    result = run_cli(train_args({**tiny_data, "results": tmp_path / "out"}, *QUICK, "--overwrite", "--continue"))
    assert result.returncode != 0 and "not allowed with argument" in result.stderr
    old_spelling = run_cli(train_args({**tiny_data, "results": tmp_path / "out"}, *QUICK, "--resume", "--overwrite"))
    assert old_spelling.returncode != 0 and "not allowed with argument --resume" in old_spelling.stderr
    assert not (tmp_path / "out").exists()
