"""After training: cross-validation summary, postprocessing choice, best configuration/ensemble."""
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from chimerax.medseg.cli import main
from chimerax.medseg.evaluation.crossval import choose_best_configuration
from chimerax.medseg.evaluation.postprocessing_choice import choose_postprocessing
from chimerax.medseg.inference.ensemble_layout import find_ensemble_postprocessing
from chimerax.medseg.inference.postprocessing import apply_postprocessing, load_postprocessing
from chimerax.medseg.training.run import train
from chimerax.medseg.training.trainer import TrainingOptions

DATASET = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "organ": 1, "lesion": 2}, "numTraining": 3,
           "file_ending": ".nii.gz"}


def _write(path: Path, array) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array, np.uint8).transpose(2, 1, 0), np.eye(4)), str(path))
    return str(path)


def _reference():
    ref = np.zeros((12, 16, 16), np.uint8)
    ref[3:9, 3:10, 3:10] = 1
    ref[5:7, 5:7, 5:7] = 2
    return ref


def test_postprocessing_kept_only_where_it_helps(tmp_path):
    pairs_noisy, pairs_clean = [], []
    for i in range(3):
        ref = _reference()
        noisy = ref.copy()
        noisy[10:12, 13:15, 13:15] = 1  # a false island far from the organ
        pairs_noisy.append((_write(tmp_path / "noisy" / f"c{i}.nii.gz", noisy), _write(tmp_path / "ref" / f"c{i}.nii.gz", ref)))
        pairs_clean.append((_write(tmp_path / "clean" / f"c{i}.nii.gz", ref), pairs_noisy[-1][1]))
    steps = choose_postprocessing(tmp_path / "noisy", DATASET, pairs_noisy)
    assert len(steps) == 1 and steps[0][1]["labels_or_regions"] == [1, 2]  # all foreground together
    spec = json.loads((tmp_path / "noisy" / "postprocessing.json").read_text())
    assert spec["dice_after"] > spec["dice_before"]
    loaded = load_postprocessing(tmp_path / "noisy" / "postprocessing.json")  # the predictor's reader accepts it
    noisy = nib.load(pairs_noisy[0][0]).get_fdata().transpose(2, 1, 0).astype(np.uint8)
    assert np.array_equal(apply_postprocessing(noisy, loaded), _reference())
    assert choose_postprocessing(tmp_path / "clean", DATASET, pairs_clean) == []
    assert load_postprocessing(tmp_path / "clean" / "postprocessing.json") == []


def test_two_folds_validated_and_summarised(tiny_data, tmp_path):
    options = TrainingOptions(epochs=1, iterations_per_epoch=2, validation_iterations=1, num_workers=0,
                              device="cpu", save_probabilities=True, validation_mirroring=False)
    said = []
    model = train(str(tiny_data["raw"]), "3d_fullres", ["0", "1"], options, output=tmp_path,
                  preprocessed=tiny_data["preprocessed"], report=said.append)
    splits = json.loads((tiny_data["preprocessed"] / "splits_final.json").read_text())
    folder = model / "crossval_results_folds_0_1"
    summary = json.loads((folder / "summary.json").read_text())
    expected = sorted(splits[0]["val"] + splits[1]["val"])
    assert sorted(Path(e["prediction_file"]).name.split(".")[0] for e in summary["metric_per_case"]) == expected
    assert (folder / "postprocessing.json").is_file()
    assert any("Cross-validation over folds 0, 1" in s for s in said)
    for fold in (0, 1):
        fold_summary = json.loads((model / f"fold_{fold}" / "validation" / "summary.json").read_text())
        assert 0 <= fold_summary["foreground_mean"]["Dice"] <= 1


def _fake_model(root: Path, name: str, probabilities: list[np.ndarray], refs: list[str]) -> Path:
    """A model folder with cross-validation results and saved probabilities, as training writes them."""
    model = root / name
    folder = model / "crossval_results_folds_0"
    folder.mkdir(parents=True)
    (model / "dataset.json").write_text(json.dumps(DATASET))
    entries = []
    from chimerax.medseg.evaluation.metrics import dataset_regions as regions_for
    from chimerax.medseg.evaluation.summary import case_entry, summarize_cases
    for i, (probs, ref) in enumerate(zip(probabilities, refs)):
        labels = probs.argmax(0).astype(np.uint8)
        pred = _write(folder / f"c{i}.nii.gz", labels)
        np.savez(folder / f"c{i}.npz", probabilities=probs.astype(np.float16))
        entries.append(case_entry(labels, _reference(), (1, 1, 1), regions_for(DATASET), pred, ref))
    (folder / "summary.json").write_text(json.dumps(summarize_cases(entries, regions_for(DATASET))))
    return model


def test_best_configuration_or_ensemble(tmp_path):
    ref = _reference()
    onehot = np.stack([ref == k for k in range(3)]).astype(np.float32)
    refs = [_write(tmp_path / "ref" / f"c{i}.nii.gz", ref) for i in range(2)]
    rng = np.random.default_rng(0)
    # two models wrong in different places: averaging them cancels the errors
    noise_a, noise_b = rng.normal(0, 1, onehot.shape), rng.normal(0, 1, onehot.shape)
    a = _fake_model(tmp_path, "A__p__3d_fullres", [onehot + 0.6 * noise_a] * 2, refs)
    b = _fake_model(tmp_path, "B__p__2d", [onehot + 0.6 * noise_b] * 2, refs)
    result = choose_best_configuration([a, b], ["0"], tmp_path / "best.json")
    singles = {c["models"][0]: c["foreground_dice"] for c in result["candidates"] if len(c["models"]) == 1}
    assert result["best"]["models"] == [str(a), str(b)]
    assert result["best"]["foreground_dice"] > max(singles.values())
    assert json.loads((tmp_path / "best.json").read_text())["best"]["models"] == [str(a), str(b)]


def test_the_ensembles_crossvalidation_is_written_as_nnunet_writes_it(tmp_path):
    """ensembles/ensemble___A___B___0/ with the averaged labels, their summary and their own postprocessing,
    and inference_information.json naming the members; `medseg predict -m A -m B --postprocess` finds it."""
    ref = _reference()
    onehot = np.stack([ref == k for k in range(3)]).astype(np.float32)
    onehot[:, 10:12, 13:15, 13:15] = [[[[0.0]]], [[[1.0]]], [[[0.0]]]]  # both models see a false island
    refs = [_write(tmp_path / "ref" / f"c{i}.nii.gz", ref) for i in range(2)]
    rng = np.random.default_rng(1)
    probs_a = [onehot + 0.5 * rng.normal(0, 1, onehot.shape) for _ in refs]
    probs_b = [onehot + 0.5 * rng.normal(0, 1, onehot.shape) for _ in refs]
    a = _fake_model(tmp_path, "A__p__3d_fullres", probs_a, refs)
    b = _fake_model(tmp_path, "B__p__2d", probs_b, refs)
    result = choose_best_configuration([a, b], ["0"], tmp_path / "best.json")
    folder = tmp_path / "ensembles" / "ensemble___A__p__3d_fullres___B__p__2d___0"
    for i, (pa, pb) in enumerate(zip(probs_a, probs_b)):
        mean = (pa.astype(np.float16).astype(np.float32) + pb.astype(np.float16).astype(np.float32)) / 2
        written = nib.load(str(folder / f"c{i}.nii.gz")).get_fdata().transpose(2, 1, 0)
        np.testing.assert_array_equal(written, mean.argmax(0))
    summary = json.loads((folder / "summary.json").read_text())
    ensemble = [c for c in result["candidates"] if len(c["models"]) == 2][0]
    assert summary["foreground_mean"]["Dice"] == pytest.approx(ensemble["foreground_dice"])
    steps = load_postprocessing(folder / "postprocessing.json")
    assert steps, "the island is in both models, so removing it must help the ensemble"
    assert find_ensemble_postprocessing([b, a], ["0"]) == folder / "postprocessing.json"
    info = json.loads((tmp_path / "inference_information.json").read_text())
    best = info["best_model_or_ensemble"]
    assert result["best"]["models"] == [str(a), str(b)]  # independent errors: averaging wins
    assert best["selected_model_or_models"] == [
        {"configuration": "3d_fullres", "trainer": "A", "plans_identifier": "p"},
        {"configuration": "2d", "trainer": "B", "plans_identifier": "p"}]
    assert best["postprocessing_file"] == str(folder / "postprocessing.json")
    assert best["result_on_crossval_post_pp"] > best["result_on_crossval_pre_pp"]
    assert set(info["all_results"]) == {"A__p__3d_fullres", "B__p__2d", folder.name}


def test_crossval_of_configurations_with_different_labels_is_one_error(tmp_path, capsys):
    ref = _reference()
    refs = [_write(tmp_path / "ref" / "c0.nii.gz", ref)]
    onehot = np.stack([ref == k for k in range(3)]).astype(np.float32)
    a = _fake_model(tmp_path, "A__p__3d_fullres", [onehot], refs)
    b = _fake_model(tmp_path, "B__p__2d", [onehot], refs)
    (b / "dataset.json").write_text(json.dumps({**DATASET, "labels": {"background": 0, "lesion": 1, "organ": 2}}))
    before = (a / "crossval_results_folds_0" / "summary.json").read_text()
    assert main(["crossval", str(a), str(b), "-f", "0"]) == 1
    err = capsys.readouterr().err
    assert "predict different labels" in err and "Traceback" not in err
    assert (a / "crossval_results_folds_0" / "summary.json").read_text() == before  # nothing was redone
    assert not (tmp_path / "ensembles").exists() and not (tmp_path / "inference_information.json").exists()
