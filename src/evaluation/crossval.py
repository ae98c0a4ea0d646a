"""After training: full-image validation of a fold, the cross-validation summary, and the
choice of the best configuration or ensemble of configurations.

``summary.json`` files follow nnU-Net's layout (``metric_per_case``, ``mean``,
``foreground_mean``; per label value, or per region as ``"(1, 2, 3)"``) with Dice, IoU, HD95
and the voxel counts; means leave out NaN (nothing to find and nothing found).
"""
from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Callable

import numpy as np

from ..datasets.dataset_json import load_dataset
from ..datasets.paths import find_dataset
from ..errors import MedSegError
from ..fileio import atomic_path, read_json, write_json
from ..images import read_case, read_image, write_label_image
from ..inference.cascade_predictor import load_predictor
from ..inference.ensemble_layout import INFERENCE_INFORMATION, ensemble_folder
from ..inference.ensemble_members import check_members
from ..inference.export import probabilities_to_labels
from ..inference.next_stage import write_next_stage
from ..inference.options import PredictOptions
from ..models.description import ModelFolder
from ..models.labels import LabelScheme
from ..models.model_folder import open_model_folder
from .metrics import dataset_regions
from .postprocessing_choice import choose_postprocessing as choose
from .summary import SUMMARY, case_entry, json_safe, summarize_cases, write_summary


def _raw_cases(setup) -> dict:
    """Raw training cases by name (the validation compares against the original label files)."""
    raw = getattr(setup, "raw_dir", None)
    if raw is None:
        raw = find_dataset(setup.plans["dataset_name"])
    return {c.name: c for c in load_dataset(raw).training_cases()}


def validate_fold(model_dir: str | os.PathLike, fold: str, val_cases: Sequence[str], preprocessed_dir,
                  setup, device: str = "cpu", save_probabilities: bool = False,
                  report: Callable[[str], None] | None = None, mirroring: bool = True) -> dict:
    """Predict every validation case of a fold on its full original image and score it.

    Writes ``fold_k/validation/CASE.nii.gz`` (and ``CASE.npz`` probabilities when asked) and
    ``fold_k/validation/summary.json``; returns the summary.
    """

    model_dir = Path(model_dir)
    out = model_dir / f"fold_{fold}" / "validation"
    out.mkdir(parents=True, exist_ok=True)
    # a cascade stage runs its previous stage's same fold first (that fold never saw these cases either)
    predictor = load_predictor(open_model_folder(model_dir), PredictOptions(folds=[fold], device=device,
                                                                            mirroring=mirroring).validate())
    config = predictor.model.configuration
    regions = dataset_regions(predictor.model.dataset_json)
    cases = _raw_cases(setup)
    missing = [c for c in val_cases if c not in cases]
    if missing:
        raise MedSegError(f"Validation case(s) {', '.join(missing[:5])} are not in the raw dataset; "
                          "the preprocessed data and the raw dataset do not match.")
    ending = predictor.model.dataset_json.get("file_ending", ".nii.gz")
    entries = []
    for i, name in enumerate(val_cases):
        case = cases[name]
        image = read_case(case.images)
        prediction = predictor.predict(image, save_probabilities=save_probabilities)
        pred_file = write_label_image(prediction.labels, image, out / f"{name}{ending}")
        write_next_stage(image, prediction.labels, predictor.model.plans, config, model_dir, name)  # a 3d_lowres
        if save_probabilities:
            assert prediction.probabilities is not None  # predict returns them when asked to
            with atomic_path(out / f"{name}.npz") as tmp:
                with open(tmp, "wb") as fh:
                    np.savez_compressed(fh, probabilities=prediction.probabilities.astype(np.float16))
        ref = read_image(case.label)
        entries.append(case_entry(prediction.labels, ref.array[0].astype(np.int16), image.spacing, regions,
                                  str(pred_file), str(case.label)))
        if report:
            report(f"validated {name} ({i + 1}/{len(val_cases)})")
    summary = summarize_cases(entries, regions)
    write_summary(out / SUMMARY, summary)
    return summary


def crossval_folder(model_dir: Path, folds: Sequence[str]) -> Path:
    return Path(model_dir) / f"crossval_results_folds_{'_'.join(str(f) for f in folds)}"


def summarize_crossval(model_dir: str | os.PathLike, folds: Sequence[str] | None = None,
                       choose_postprocessing: bool = True) -> dict:
    """Merge the folds' validation predictions into ``crossval_results_folds_*/`` with a summary.json,
    then choose the postprocessing on them (``postprocessing.json``). Returns the merged summary."""
    model_dir = Path(model_dir)
    if folds is None:
        folds = sorted((p.name[5:] for p in model_dir.glob("fold_*") if (p / "validation" / SUMMARY).is_file()
                        and p.name != "fold_all"), key=int)
    if not folds:
        raise MedSegError(f"No validated folds in {model_dir}; train the folds (with validation) first.")
    out = crossval_folder(model_dir, folds)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    dataset_json = read_json(model_dir / "dataset.json")
    regions = dataset_regions(dataset_json)
    for fold in folds:
        summary_file = model_dir / f"fold_{fold}" / "validation" / SUMMARY
        if not summary_file.is_file():
            raise MedSegError(f"Fold {fold} of {model_dir} has no validation/summary.json; train or validate it first.")
        for entry in read_json(summary_file)["metric_per_case"]:
            src = Path(entry["prediction_file"])
            dst = out / src.name
            shutil.copyfile(src, dst)
            if src.with_suffix("").with_suffix(".npz").is_file():
                shutil.copyfile(src.with_suffix("").with_suffix(".npz"), out / (dst.name.split(".")[0] + ".npz"))
            entries.append({**entry, "prediction_file": str(dst),
                            "metrics": {k: {m: (float("nan") if v is None else v) for m, v in d.items()}
                                        for k, d in entry["metrics"].items()}})
    summary = summarize_cases(entries, regions)
    write_summary(out / SUMMARY, summary)
    if choose_postprocessing:
        choose(out, dataset_json, [(e["prediction_file"], e["reference_file"]) for e in entries])
    return summary


def choose_best_configuration(model_dirs: Sequence[str | os.PathLike], folds: Sequence[str],
                              output: str | os.PathLike | None = None) -> dict:
    """Compare configurations (and ensembles of two, where validation probabilities were saved) by
    the cross-validated mean foreground Dice; write and return the choice.

    Each ensemble's cross-validation is written as nnU-Net's find_best_configuration writes it:
    ``<dataset results>/ensembles/ensemble___A___B___<folds>/`` with the averaged labels, summary.json
    and postprocessing.json (which ``medseg predict -m A -m B --postprocess`` applies); the choice
    also goes to ``inference_information.json`` beside the model folders, in nnU-Net's layout.
    """
    check_same_dataset(model_dirs)
    candidates = []
    for d in model_dirs:
        summary = read_json(crossval_folder(Path(d), folds) / SUMMARY)
        candidates.append({"models": [str(d)], "foreground_dice": summary["foreground_mean"]["Dice"],
                           "folder": str(crossval_folder(Path(d), folds))})
    for a, b in combinations(model_dirs, 2):
        folder = evaluate_ensemble([Path(a), Path(b)], folds)
        if folder is not None:
            dice = read_json(folder / SUMMARY)["foreground_mean"]["Dice"]
            candidates.append({"models": [str(a), str(b)], "foreground_dice": dice, "folder": str(folder)})
    valid = [c for c in candidates if c["foreground_dice"] is not None and not math.isnan(c["foreground_dice"])]
    if not valid:
        raise MedSegError("No configuration has a usable cross-validation result to compare.")
    best = max(valid, key=lambda c: c["foreground_dice"])  # the first on a tie: a single configuration
    result = {"best": best, "candidates": candidates, "folds": list(folds)}
    target = Path(output) if output else Path(model_dirs[0]).parent / "best_configuration.json"
    write_json(target, json_safe(result))
    write_json(Path(model_dirs[0]).parent / INFERENCE_INFORMATION, json_safe(inference_information(result)))
    return result


def check_same_dataset(model_dirs: Sequence[str | os.PathLike]) -> None:
    """Configurations compared (and ensembled) must be of one dataset: same dataset, channels and labels."""
    folders = []
    for d in model_dirs:
        plans = Path(d) / "plans.json"
        folders.append(ModelFolder(Path(d), read_json(Path(d) / "dataset.json"),
                                   read_json(plans) if plans.is_file() else {}, Path(d).name))
    check_members(folders, [str(d) for d in model_dirs])


def evaluate_ensemble(model_dirs: Sequence[Path], folds: Sequence[str]) -> Path | None:
    """Average the models' validation probabilities (as nnUNetv2_ensemble), write the labels, their
    summary and the postprocessing chosen on them into the ensemble's folder; None without probabilities."""
    import torch

    sources = [crossval_folder(d, folds) for d in model_dirs]
    first = read_json(sources[0] / SUMMARY)["metric_per_case"]
    names = [Path(e["prediction_file"]).name.split(".")[0] for e in first]
    if not all((f / f"{name}.npz").is_file() for f in sources for name in names):
        return None
    dataset_json = read_json(model_dirs[0] / "dataset.json")
    scheme, regions = LabelScheme.from_dataset_json(dataset_json), dataset_regions(dataset_json)
    out = ensemble_folder(model_dirs, folds)
    entries, pairs = [], []
    for name, entry in zip(names, first):
        mean = sum(np.load(f / f"{name}.npz")["probabilities"].astype(np.float32) for f in sources) / len(sources)
        labels = probabilities_to_labels(torch.from_numpy(mean), scheme)
        ref = read_image(entry["reference_file"])
        written = write_label_image(labels, ref, out / Path(entry["prediction_file"]).name)
        entries.append(case_entry(labels, ref.array[0].astype(np.int16), ref.spacing, regions, str(written),
                                  entry["reference_file"]))
        pairs.append((str(written), entry["reference_file"]))
    write_summary(out / SUMMARY, summarize_cases(entries, regions))
    for name in ("dataset.json", "plans.json"):  # as nnU-Net copies them: the label handling for the ensemble
        if (model_dirs[0] / name).is_file():
            shutil.copyfile(model_dirs[0] / name, out / name)
    choose(out, dataset_json, pairs)
    return out


def inference_information(result: dict) -> dict:
    """The choice in nnU-Net's ``inference_information.json`` layout (the postprocessing file is our JSON;
    nnU-Net names its pickle there, which MedSeg never reads)."""
    best, folds = result["best"], result["folds"]
    folder = Path(best["folder"])
    after = folder / "postprocessed" / SUMMARY
    return {
        "folds": folds,
        "dataset_name_or_id": Path(best["models"][0]).parent.name,
        "considered_models": [_identifier(Path(c["models"][0])) for c in result["candidates"]
                              if len(c["models"]) == 1],
        "ensembling_allowed": True,
        "all_results": {Path(c["folder"]).name if len(c["models"]) > 1 else Path(c["models"][0]).name:
                        c["foreground_dice"] for c in result["candidates"]},
        "best_model_or_ensemble": {
            "result_on_crossval_pre_pp": best["foreground_dice"],
            "result_on_crossval_post_pp": read_json(after)["foreground_mean"]["Dice"] if after.is_file() else None,
            "postprocessing_file": str(folder / "postprocessing.json"),
            "some_plans_file": str(Path(best["models"][0]) / "plans.json"),
            "selected_model_or_models": [_identifier(Path(m)) for m in best["models"]],
        },
    }


def _identifier(model_dir: Path) -> dict:
    """trainer, plans and configuration from a folder named <Trainer>__<Plans>__<configuration>."""
    parts = model_dir.name.split("__")
    trainer, plans, configuration = parts if len(parts) == 3 else ("", "", model_dir.name)
    return {"configuration": configuration, "trainer": trainer, "plans_identifier": plans}
