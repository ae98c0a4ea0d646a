"""Build the nnU-Net v2 cascade parity fixture (3d_lowres -> 3d_cascade_fullres) with nnunetv2 itself.

Usage (in the venv that holds nnunetv2 2.8.1):
    .venv/bin/python scripts/make_nnunet_cascade_fixtures.py OUTDIR [--work DIR] [--install]

nnU-Net fingerprints and plans a small synthetic dataset (Dataset903). Its planner makes a
3d_lowres stage only when the patch covers < 25 % of the median image, so it is given a small GPU
memory target (that shrinks the patch; everything else is nnU-Net's own choice). Both stages are
networks built by nnU-Net's trainer from those plans, seeded and made confident like the other
untrained fixtures (scripts/make_nnunet_fixtures.py); the cascade network's weights on its one-hot
previous-stage inputs are scaled up so that what the previous stage says visibly changes the result.
nnU-Net's predictor then predicts 3d_lowres, and 3d_cascade_fullres with
``folder_with_segs_from_prev_stage`` = those lowres predictions (nnUNetv2_predict -prev_stage_predictions).
OUTDIR receives what is committed under tests/data/nnunet_cascade/ (see its README.md).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_nnunet_fixtures import (  # noqa: E402
    CHANNELS,
    SEG_LAYER_GAIN,
    TARGET_FRACTIONS,
    _nnunet_version,
    log,
    make_trainer,
    seed_everything,
    write_json,
    write_phantom_cases,
    write_test_cases,
)

DATASET_ID, DATASET_NAME = 903, "Dataset903_ParityCascade"
N_TRAIN = 8
BASE_FEATURES, MAX_FEATURES = 4, 32
GPU_TARGET_GB = 0.001     # small: the patch shrinks below 25 % of the median image -> 3d_lowres is planned
PREVIOUS_STAGE_GAIN = 4.0  # the cascade's first-conv weights on its one-hot inputs
TRAINER, PLANS = "nnUNetTrainer", "nnUNetPlans"
CASES = ("typical", "aniso", "cropped", "small")


def folder_name(configuration: str) -> str:
    return f"{TRAINER}__{PLANS}__{configuration}"


def write_training_set(raw: Path) -> None:
    ds = raw / DATASET_NAME
    if (ds / "dataset.json").exists():
        return
    write_phantom_cases(ds, 903, N_TRAIN)
    write_json({"channel_names": CHANNELS, "numTraining": N_TRAIN, "file_ending": ".nii.gz",
                "name": "ParityCascade", "description": "synthetic 2-channel head phantoms (MedSeg cascade fixture)",
                "labels": {"background": 0, "edema": 1, "core": 2}}, ds / "dataset.json")


def plan() -> dict:
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprint_dataset
    from nnunetv2.paths import nnUNet_preprocessed

    plans_file = Path(nnUNet_preprocessed) / DATASET_NAME / f"{PLANS}.json"
    if not (plans_file.parent / "dataset_fingerprint.json").exists():
        extract_fingerprint_dataset(DATASET_ID, num_processes=1, check_dataset_integrity=True,
                                    show_progress_bar=False)
    planner = ExperimentPlanner(DATASET_ID, gpu_memory_target_in_gb=GPU_TARGET_GB)
    planner.UNet_base_num_features = BASE_FEATURES
    planner.UNet_max_features_3d = planner.UNet_max_features_2d = MAX_FEATURES
    planner.plan_experiment()
    plans = json.loads(plans_file.read_text())
    if "3d_cascade_fullres" not in plans["configurations"]:
        raise SystemExit(f"nnU-Net planned no cascade (configurations: {list(plans['configurations'])}); "
                         "lower GPU_TARGET_GB")
    return plans


def nnunet_predictor(mirroring: bool = True):
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    return nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirroring,
                           perform_everything_on_device=False, device=torch.device("cpu"),
                           verbose=False, allow_tqdm=False)


def preprocessed_input(trainer, dataset_json: dict, files: list[str], prev_seg: str | None):
    """nnU-Net's own network input for one case (with the one-hot previous stage for a cascade)."""
    import torch
    from nnunetv2.utilities.label_handling.label_handling import convert_labelmap_to_one_hot
    pre = trainer.configuration_manager.preprocessor_class(verbose=False)
    data, seg, _ = pre.run_case(files, prev_seg, trainer.plans_manager, trainer.configuration_manager,
                                dataset_json)
    if prev_seg is not None:
        onehot = convert_labelmap_to_one_hot(seg[0], trainer.label_manager.foreground_labels, data.dtype)
        data = np.vstack((data, onehot))
    return torch.from_numpy(data)


def calibrate(net, trainer, data) -> None:
    """Shift the last seg layer's biases so labels 1, 2 take set fractions of the case (nnU-Net's TTA logits)."""
    import torch
    net.decoder.deep_supervision = False
    predictor = nnunet_predictor()
    predictor.manual_initialization(net, trainer.plans_manager, trainer.configuration_manager,
                                    [net.state_dict()], trainer.dataset_json, type(trainer).__name__,
                                    trainer.inference_allowed_mirroring_axes)
    logits = predictor.predict_logits_from_preprocessed_data(data).float()
    last = net.decoder.seg_layers[-1]
    with torch.no_grad():
        for i, frac in enumerate(TARGET_FRACTIONS):
            ch = i + 1
            others = torch.cat([logits[:ch], logits[ch + 1:]])
            shift = torch.quantile((logits[ch] - others.max(0).values).flatten(), 1.0 - frac)
            last.bias[ch] -= shift
            logits[ch] -= shift
    net.decoder.deep_supervision = True


def build_stage(model_dir: Path, plans: dict, configuration: str, dataset_json: dict, seed: int,
                files: list[str], prev_seg: str | None) -> None:
    """An untrained nnU-Net-built network for ``configuration``, saved with nnUNetTrainer's checkpoint keys."""
    import torch
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    seed_everything(seed)
    trainer = make_trainer(plans, configuration, dataset_json)
    n_in = determine_num_input_channels(trainer.plans_manager, trainer.configuration_manager, dataset_json)
    net = trainer.build_network_architecture(trainer.plans_manager, trainer.configuration_manager, n_in,
                                             trainer.label_manager.num_segmentation_heads, True)
    trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    with torch.no_grad():
        for layer in net.decoder.seg_layers:
            layer.weight *= SEG_LAYER_GAIN
            layer.bias *= SEG_LAYER_GAIN
        if prev_seg is not None:  # the first conv's weights on the one-hot inputs (after the image channels)
            first = net.encoder.stages[0][0].convs[0].conv
            first.weight[:, len(CHANNELS):] *= PREVIOUS_STAGE_GAIN
    calibrate(net, trainer, preprocessed_input(trainer, dataset_json, files, prev_seg))
    model_dir.mkdir(parents=True, exist_ok=True)
    write_json(dataset_json, model_dir / "dataset.json")
    write_json(plans, model_dir / "plans.json")
    ckpt = {"network_weights": net.state_dict(), "logging": trainer.logger.get_checkpoint(), "_best_ema": None,
            "current_epoch": 0, "init_args": trainer.my_init_kwargs, "trainer_name": type(trainer).__name__,
            "inference_allowed_mirroring_axes": trainer.inference_allowed_mirroring_axes}
    (model_dir / "fold_0").mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, model_dir / "fold_0" / "checkpoint_final.pth")


def predict(model_dir: Path, cases_dir: Path, cases: dict, out_dir: Path, prev_stage: Path | None) -> None:
    predictor = nnunet_predictor()
    predictor.initialize_from_trained_model_folder(str(model_dir), use_folds=(0,),
                                                   checkpoint_name="checkpoint_final.pth")
    out_dir.mkdir(parents=True, exist_ok=True)
    lists = [[str(cases_dir / f) for f in cases[n]["files"]] for n in CASES]
    predictor.predict_from_files_sequential(lists, [str(out_dir / n) for n in CASES], save_probabilities=True,
                                            overwrite=True,
                                            folder_with_segs_from_prev_stage=str(prev_stage) if prev_stage else None)
    for name in CASES:
        (out_dir / f"{name}.pkl").unlink(missing_ok=True)  # a pickle: never shipped
    for extra in ("dataset.json", "plans.json", "predict_from_raw_data_args.json"):
        (out_dir / extra).unlink(missing_ok=True)
    write_json({"tile_step_size": 0.5, "use_gaussian": True, "use_mirroring": True, "device": "cpu", "folds": [0],
                "prev_stage_predictions": str(prev_stage.relative_to(out_dir.parent.parent)) if prev_stage else None,
                "api": "nnUNetPredictor.predict_from_files_sequential", "nnunetv2_version": _nnunet_version()},
               out_dir / "settings.json")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--work", type=Path, default=None, help="nnU-Net work folder (default: a temp folder)")
    ap.add_argument("--install", action="store_true", help="copy the results into tests/data/nnunet_cascade/")
    args = ap.parse_args()
    work = (args.work or Path(tempfile.mkdtemp(prefix="nnunet_cascade_"))).resolve()
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ[var] = str(work / var)
        (work / var).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("nnUNet_compile", "f")
    out = args.outdir.resolve()
    out.mkdir(parents=True, exist_ok=True)

    write_training_set(work / "nnUNet_raw")
    cases = {n: c for n, c in write_test_cases(out / "cases").items() if n in CASES}
    log("fingerprint + plan")
    plans = plan()
    dataset_json = json.loads((work / "nnUNet_raw" / DATASET_NAME / "dataset.json").read_text())
    models = out / DATASET_NAME
    typical = [str(out / "cases" / f) for f in cases["typical"]["files"]]
    log("3d_lowres")
    build_stage(models / folder_name("3d_lowres"), plans, "3d_lowres", dataset_json, 5, typical, None)
    lowres_ref = out / "reference" / "3d_lowres"
    predict(models / folder_name("3d_lowres"), out / "cases", cases, lowres_ref, None)
    log("3d_cascade_fullres")
    build_stage(models / folder_name("3d_cascade_fullres"), plans, "3d_cascade_fullres", dataset_json, 6, typical,
                str(lowres_ref / "typical.nii.gz"))
    predict(models / folder_name("3d_cascade_fullres"), out / "cases", cases, out / "reference" / "3d_cascade_fullres",
            lowres_ref)
    configs = plans["configurations"]
    write_json({"generator": "scripts/make_nnunet_cascade_fixtures.py", "nnunetv2_version": _nnunet_version(),
                "dataset": DATASET_NAME, "cases": cases, "stages": {
                    c: {"dir": f"{DATASET_NAME}/{folder_name(c)}", "reference": f"reference/{c}"}
                    for c in ("3d_lowres", "3d_cascade_fullres")},
                "planner": {"gpu_memory_target_in_gb": GPU_TARGET_GB, "base_features": BASE_FEATURES,
                            "max_features": MAX_FEATURES},
                "spacing": {c: configs[c].get("spacing") for c in ("3d_lowres", "3d_fullres")},
                "patch_size": {c: configs[c].get("patch_size") for c in ("3d_lowres", "3d_fullres")},
                "notes": f"untrained nnU-Net-built networks, seg layers x{SEG_LAYER_GAIN}, biases calibrated to "
                         f"{list(TARGET_FRACTIONS)} of the typical case; cascade first-conv one-hot weights "
                         f"x{PREVIOUS_STAGE_GAIN}"}, out / "manifest.json")
    log(f"done: {out}")
    if args.install:
        repo = Path(__file__).resolve().parent.parent / "tests" / "data" / "nnunet_cascade"
        for name in ("manifest.json", "cases", "reference", DATASET_NAME):
            dst = repo / name
            if dst.is_dir():
                shutil.rmtree(dst)
            dst.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if (out / name).is_dir() else shutil.copy)(out / name, dst)
        log(f"installed into {repo}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
