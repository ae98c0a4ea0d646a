"""Build the nnU-Net parity fixtures with the real nnU-Net v2 as the oracle.

Usage (in the venv that holds nnunetv2 2.8.1):
    /work/nnvenv/bin/python scripts/make_nnunet_fixtures.py OUTDIR [--work DIR] [--epochs N] [--install]

It writes a synthetic dataset, lets nnU-Net fingerprint, plan and preprocess it, trains a small
3d_fullres model (fold 0) for a few minutes on the CPU, builds untrained (but confident)
region-based, 2d and residual-encoder models from nnU-Net's own plans, and records nnU-Net's
predictions, probabilities and preprocessed arrays for a handful of test cases. OUTDIR receives
the files that are committed under tests/data/nnunet/ (see its README.md). --install copies them
into this repository (tests/data/nnunet/), replacing the generated parts there. (The embedded demo
model in src/data/ is MedSeg's own: scripts/train_demo_model.sh.)
nnU-Net's folders (nnUNet_raw/_preprocessed/_results) live in --work (a temp folder by default);
stages whose results already exist in --work are not redone.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nnunet_phantom import affine_for, make_phantom, save_nifti  # noqa: E402

DATASET_ID, DATASET_NAME = 901, "Dataset901_ParityPhantom"
REGION_ID, REGION_NAME = 902, "Dataset902_ParityRegions"
CHANNELS = {"0": "T1", "1": "T2"}
N_TRAIN = 18
TRAIN_SPACING = (2.0, 2.0, 2.0)
# Narrower than nnU-Net's default widths (32 -> 320) so that checkpoints stay ~0.5-2 MB and CPU
# training is quick; the architecture code path is the same (and the cap is still exercised).
BASE_FEATURES, MAX_FEATURES = 8, 64
UNTRAINED_BASE, UNTRAINED_MAX = 8, 64
RESENC_BASE, RESENC_MAX = 4, 32  # residual blocks (1, 3, 4, 6) weigh ~4x more per width
# Untrained models: biases of the output layer set so that labels/regions 1 and 2 take these
# fractions of the typical case's cropped voxels (otherwise one output often wins everywhere).
TARGET_FRACTIONS = (0.25, 0.08)
SEG_LAYER_GAIN = 20.0  # makes an untrained network's outputs confident (not all ~0.5)
TIMINGS: dict = {}


def log(msg: str) -> None:
    print(f"[fixtures {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def write_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def seed_everything(seed: int) -> None:
    import torch
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- data
def write_phantom_cases(ds: Path, seed: int, count: int) -> None:
    """``count`` two-channel phantoms of about 40 x 48 x 40 voxels at TRAIN_SPACING, with their labels, into
    ds/imagesTr and ds/labelsTr (the training sets of this script and of make_nnunet_cascade_fixtures.py)."""
    rng = np.random.default_rng(seed)
    for sub in ("imagesTr", "labelsTr"):
        (ds / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        shape = tuple(int(n) for n in np.array([40, 48, 40]) + rng.integers(-4, 5, 3))
        image, labels = make_phantom(rng, shape, TRAIN_SPACING)
        aff = affine_for(TRAIN_SPACING, origin_xyz=rng.uniform(-50, 50, 3))
        for c in range(2):
            save_nifti(image[c], aff, ds / "imagesTr" / f"phantom_{i:03d}_{c:04d}.nii.gz")
        save_nifti(labels, aff, ds / "labelsTr" / f"phantom_{i:03d}.nii.gz")


def write_training_set(raw: Path) -> None:
    """Dataset901 (labels) and Dataset902 (same images, region labels)."""
    ds = raw / DATASET_NAME
    if (ds / "dataset.json").exists():
        return
    write_phantom_cases(ds, 901, N_TRAIN)
    base = {"channel_names": CHANNELS, "numTraining": N_TRAIN, "file_ending": ".nii.gz",
            "name": "ParityPhantom", "description": "synthetic 2-channel head phantoms (MedSeg fixtures)"}
    write_json({**base, "labels": {"background": 0, "edema": 1, "core": 2}}, ds / "dataset.json")

    reg = raw / REGION_NAME
    reg.mkdir(parents=True, exist_ok=True)
    for sub in ("imagesTr", "labelsTr"):
        shutil.copytree(ds / sub, reg / sub, dirs_exist_ok=True)
    write_json({**base, "labels": {"background": 0, "whole": [1, 2], "core": [2]},
                "regions_class_order": [1, 2]}, reg / "dataset.json")


def write_test_cases(cases_dir: Path) -> dict:
    """Cases not seen in training, each with one property the predictor must handle."""
    rng = np.random.default_rng(4242)
    specs = {
        # like the training data: the demo case
        "typical": dict(shape=(42, 46, 40), spacing=TRAIN_SPACING,
                        affine=dict(origin_xyz=(-40.0, -46.0, -42.0)), properties=["typical"]),
        # z spacing 4x the in-plane one and unlike the target spacing: separate-z resampling;
        # rotated about z with an odd origin: a non-identity, non-axis-aligned affine
        "aniso": dict(shape=(20, 84, 76), spacing=(4.0, 1.0, 1.0),
                      affine=dict(origin_xyz=(-37.25, 12.5, -41.75), rotation_deg_about_z=17.0),
                      properties=["anisotropic", "rotated_affine"]),
        # a small head in a wide zero border: the non-zero crop is much smaller than the image
        "cropped": dict(shape=(56, 64, 60), spacing=TRAIN_SPACING,
                        head_centre_mm=(40.0, 50.0, 74.0), head_radii_mm=(22.0, 27.0, 22.0),
                        affine=dict(origin_xyz=(60.0, 64.0, -20.0), flip_xy=True),
                        properties=["cropped", "flipped_affine"]),
        # thinner than the patch along z (the head is cut by the image border there)
        "small": dict(shape=(18, 48, 42), spacing=TRAIN_SPACING,
                      head_centre_mm=(18.0, 48.0, 42.0), head_radii_mm=(30.0, 19.0, 16.0),
                      affine=dict(origin_xyz=(-12.0, 3.0, 7.5)), properties=["smaller_than_patch"]),
    }
    cases_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, s in specs.items():
        image, labels = make_phantom(rng, s["shape"], s["spacing"], s.get("head_centre_mm"),
                                     s.get("head_radii_mm"))
        aff = affine_for(s["spacing"], **s["affine"])
        files = []
        for c in range(2):
            f = cases_dir / f"{name}_{c:04d}.nii.gz"
            save_nifti(image[c], aff, f)
            files.append(f.name)
        save_nifti(labels, aff, cases_dir / f"{name}_truth.nii.gz")
        nz = np.argwhere((image != 0).any(0))
        out[name] = {"files": files, "truth": f"{name}_truth.nii.gz", "shape_zyx": list(s["shape"]),
                     "spacing_zyx": list(s["spacing"]), "affine": aff.tolist(), "properties": s["properties"],
                     "nonzero_bbox_zyx": [[int(a), int(b) + 1] for a, b in zip(nz.min(0), nz.max(0))],
                     "labels_present": sorted(int(v) for v in np.unique(labels))}
    return out


# ----------------------------------------------------------------------------- planning
def plan_and_preprocess() -> None:
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset, preprocess_dataset)
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
    from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import (
        nnUNetPlannerResEncM)
    from nnunetv2.paths import nnUNet_preprocessed

    pre = Path(nnUNet_preprocessed)
    if (pre / DATASET_NAME / "nnUNetPlans_3d_fullres").is_dir():
        return
    t0 = time.time()
    extract_fingerprint_dataset(DATASET_ID, num_processes=2, check_dataset_integrity=True, show_progress_bar=False)
    t1 = time.time()
    planner = ExperimentPlanner(DATASET_ID)
    planner.UNet_base_num_features = BASE_FEATURES
    planner.UNet_max_features_3d = planner.UNet_max_features_2d = MAX_FEATURES
    planner.plan_experiment()
    t2 = time.time()
    preprocess_dataset(DATASET_ID, "nnUNetPlans", ("3d_fullres",), num_processes=(2,), show_progress_bar=False)
    t3 = time.time()
    TIMINGS["nnunet_fingerprint_s"] = round(t1 - t0, 1)
    TIMINGS["nnunet_plan_s"] = round(t2 - t1, 1)
    TIMINGS["nnunet_preprocess_3d_fullres_s"] = round(t3 - t2, 1)
    TIMINGS["n_training_cases"] = N_TRAIN

    # Residual-encoder plans (M preset), narrowed like the others to keep the file small.
    planner = nnUNetPlannerResEncM(DATASET_ID)
    planner.UNet_base_num_features = RESENC_BASE
    planner.UNet_max_features_3d = planner.UNet_max_features_2d = RESENC_MAX
    planner.plan_experiment()

    # Region dataset: same images, so nnU-Net's fingerprint of 901 applies; plan it from the raw dataset.json.
    (pre / REGION_NAME).mkdir(parents=True, exist_ok=True)
    shutil.copy(pre / DATASET_NAME / "dataset_fingerprint.json", pre / REGION_NAME / "dataset_fingerprint.json")
    planner = ExperimentPlanner(REGION_ID)
    planner.UNet_base_num_features = UNTRAINED_BASE
    planner.UNet_max_features_3d = planner.UNet_max_features_2d = UNTRAINED_MAX
    planner.plan_experiment()
    shutil.copy(Path(os.environ["nnUNet_raw"]) / REGION_NAME / "dataset.json", pre / REGION_NAME / "dataset.json")


# ----------------------------------------------------------------------------- models
def make_trainer(plans: dict, configuration: str, dataset_json: dict):
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    plans = dict(plans)
    plans["continue_training"] = False  # nnUNetTrainer pops this flag (its CLI sets it)
    return nnUNetTrainer(plans, configuration, 0, dataset_json, device=torch.device("cpu"))


def strip_checkpoint(src: Path, dst: Path) -> None:
    """Drop optimizer/grad-scaler state: prediction never reads them and they double the size."""
    import torch
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    ckpt.pop("optimizer_state", None)
    ckpt.pop("grad_scaler_state", None)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, dst)


def write_model_folder(dst: Path, dataset_json: dict, plans: dict, fingerprint: dict) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    write_json(dataset_json, dst / "dataset.json")
    write_json(plans, dst / "plans.json")
    write_json(fingerprint, dst / "dataset_fingerprint.json")


def train_3d(pre: Path, results: Path, epochs: int, iterations: int) -> Path:
    """Train 3d_fullres fold 0 with nnUNetTrainer; returns its checkpoint_final.pth."""
    final = results / DATASET_NAME / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_0" / "checkpoint_final.pth"
    if final.exists():
        return final
    plans = json.loads((pre / DATASET_NAME / "nnUNetPlans.json").read_text())
    dataset_json = json.loads((pre / DATASET_NAME / "dataset.json").read_text())
    seed_everything(0)
    trainer = make_trainer(plans, "3d_fullres", dataset_json)
    trainer.num_epochs = epochs
    trainer.num_iterations_per_epoch = iterations
    trainer.num_val_iterations_per_epoch = 5
    t0 = time.time()
    trainer.run_training()
    dt = time.time() - t0
    TIMINGS["nnunet_train_3d_fullres"] = {
        "epochs": epochs, "iterations_per_epoch": iterations, "val_iterations_per_epoch": 5,
        "batch_size": plans["configurations"]["3d_fullres"]["batch_size"],
        "patch_size": plans["configurations"]["3d_fullres"]["patch_size"],
        "total_s": round(dt, 1), "per_epoch_s": round(dt / epochs, 1),
    }
    try:  # nnU-Net's running pseudo-Dice on the validation patches
        TIMINGS["nnunet_train_3d_fullres"]["final_ema_pseudo_dice"] = float(
            trainer.logger.get_value("ema_fg_dice", None)[-1])
    except Exception as e:  # only a report; never fail the build on it
        print("could not read ema_fg_dice:", e)
    return final


def calibrate_output_biases(net, trainer, dataset_json: dict, image_files: list[str]) -> None:
    """Shift the full-resolution output biases so labels (regions) 1, 2 cover set fractions of a case.

    The logits come from nnU-Net's own sliding window with mirroring (averaging flips shrinks an
    untrained network's logits a lot); a bias shift moves those averaged logits by exactly itself.
    """
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    pre = trainer.configuration_manager.preprocessor_class(verbose=False)
    data, _, _ = pre.run_case(image_files, None, trainer.plans_manager, trainer.configuration_manager,
                              dataset_json)
    net.decoder.deep_supervision = False  # as nnU-Net's predictor builds it
    predictor = nnUNetPredictor(tile_step_size=0.5, use_mirroring=True, perform_everything_on_device=False,
                                device=torch.device("cpu"), allow_tqdm=False)
    predictor.manual_initialization(net, trainer.plans_manager, trainer.configuration_manager,
                                    [net.state_dict()], dataset_json, type(trainer).__name__,
                                    trainer.inference_allowed_mirroring_axes)
    logits = predictor.predict_logits_from_preprocessed_data(torch.from_numpy(data)).float()
    regions = trainer.label_manager.has_regions
    last = net.decoder.seg_layers[-1]
    with torch.no_grad():
        for i, frac in enumerate(TARGET_FRACTIONS):
            ch = i if regions else i + 1  # softmax outputs start with background
            if regions:
                score = logits[ch]  # sigmoid > 0.5 <=> logit > 0
            else:  # argmax picks ch <=> its logit beats every other one
                others = torch.cat([logits[:ch], logits[ch + 1:]])
                score = logits[ch] - others.max(0).values
            shift = torch.quantile(score.flatten(), 1.0 - frac)
            last.bias[ch] -= shift
            logits[ch] -= shift
    net.decoder.deep_supervision = True


def save_untrained(dst_ckpt: Path, plans: dict, configuration: str, dataset_json: dict, seed: int,
                   calibration_files: list[str]) -> None:
    """An nnU-Net-built, untrained network saved with nnUNetTrainer's checkpoint keys."""
    import torch
    seed_everything(seed)
    trainer = make_trainer(plans, configuration, dataset_json)
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    n_in = determine_num_input_channels(trainer.plans_manager, trainer.configuration_manager, dataset_json)
    net = trainer.build_network_architecture(trainer.plans_manager, trainer.configuration_manager, n_in,
                                             trainer.label_manager.num_segmentation_heads, True)
    trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()  # sets the allowed mirror axes
    with torch.no_grad():
        for layer in net.decoder.seg_layers:
            layer.weight *= SEG_LAYER_GAIN
            layer.bias *= SEG_LAYER_GAIN
    calibrate_output_biases(net, trainer, dataset_json, calibration_files)
    state = net.state_dict()
    ckpt = {
        "network_weights": state,
        "logging": trainer.logger.get_checkpoint(),
        "_best_ema": None,
        "current_epoch": 0,
        "init_args": trainer.my_init_kwargs,
        "trainer_name": type(trainer).__name__,
        "inference_allowed_mirroring_axes": trainer.inference_allowed_mirroring_axes,
    }
    dst_ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, dst_ckpt)


# ----------------------------------------------------------------------------- oracle runs
def predict(model_dir: Path, cases_dir: Path, cases: dict, names: list[str], out_dir: Path,
            use_mirroring: bool) -> dict:
    """nnU-Net's own prediction (+ probabilities) of each case; returns seconds per case."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    settings = {"tile_step_size": 0.5, "use_gaussian": True, "use_mirroring": use_mirroring,
                "device": "cpu", "folds": [0], "checkpoint_name": "checkpoint_final.pth",
                "save_probabilities": True, "torch_threads": torch.get_num_threads(),
                "nnunetv2_version": _nnunet_version(), "api": "nnUNetPredictor.predict_from_files_sequential"}
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=use_mirroring,
                                perform_everything_on_device=False, device=torch.device("cpu"),
                                verbose=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(model_dir), use_folds=(0,),
                                                   checkpoint_name="checkpoint_final.pth")
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds = {}
    for name in names:
        files = [str(cases_dir / f) for f in cases[name]["files"]]
        t0 = time.time()
        predictor.predict_from_files_sequential([files], [str(out_dir / name)], save_probabilities=True,
                                                overwrite=True)
        seconds[name] = round(time.time() - t0, 2)
        (out_dir / f"{name}.pkl").unlink(missing_ok=True)  # a pickle: never shipped
    for extra in ("dataset.json", "plans.json", "predict_from_raw_data_args.json"):
        (out_dir / extra).unlink(missing_ok=True)
    settings["seconds_per_case"] = seconds
    write_json(settings, out_dir / "settings.json")
    return seconds


def _nnunet_version() -> str:
    from importlib.metadata import version
    return version("nnunetv2")


def record_preprocessing(model_dir: Path, cases_dir: Path, cases: dict, names: list[str], out_dir: Path) -> None:
    """nnU-Net's DefaultPreprocessor output (transpose, crop, normalize, resample) and properties."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    plans_manager = PlansManager(str(model_dir / "plans.json"))
    cm = plans_manager.get_configuration("3d_fullres")
    dataset_json = json.loads((model_dir / "dataset.json").read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        pre = cm.preprocessor_class(verbose=False)
        data, _, props = pre.run_case([str(cases_dir / f) for f in cases[name]["files"]], None, plans_manager,
                                      cm, dataset_json)
        np.savez_compressed(out_dir / f"{name}.npz", data=data.astype(np.float32))
        write_json(_jsonable(props), out_dir / f"{name}.json")


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


# ----------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--work", type=Path, default=None, help="nnU-Net work folder (default: a temp folder)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--iterations", type=int, default=25)
    ap.add_argument("--install", action="store_true",
                    help="copy the results into tests/data/nnunet/ and src/data/ of this repository")
    args = ap.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="nnunet_fixtures_"))
    work = work.resolve()
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ[var] = str(work / var)
        (work / var).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("nnUNet_n_proc_DA", "1")  # 2-core machine
    os.environ.setdefault("nnUNet_compile", "f")
    out = args.outdir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    timings_file = work / "timings.json"
    if timings_file.exists():
        TIMINGS.update(json.loads(timings_file.read_text()))

    log(f"work folder {work}")
    write_training_set(work / "nnUNet_raw")
    cases = write_test_cases(out / "cases")
    log("plan + preprocess")
    plan_and_preprocess()
    write_json(TIMINGS, timings_file)

    pre = work / "nnUNet_preprocessed"
    results = work / "nnUNet_results"
    log("train 3d_fullres fold 0")
    ckpt = train_3d(pre, results, args.epochs, args.iterations)
    write_json(TIMINGS, timings_file)

    plans = json.loads((pre / DATASET_NAME / "nnUNetPlans.json").read_text())
    dataset_json = json.loads((pre / DATASET_NAME / "dataset.json").read_text())
    fingerprint = json.loads((pre / DATASET_NAME / "dataset_fingerprint.json").read_text())
    models = {}

    def entry(plans_, configuration: str, plans_name: str, trained: bool, region_based: bool) -> dict:
        return {"configuration": configuration, "plans": plans_name, "trained": trained,
                "network_class": plans_["configurations"][configuration]["architecture"]["network_class_name"],
                "region_based": region_based,
                "nnunet_folder_name": f"nnUNetTrainer__{plans_name}__{configuration}"}

    write_model_folder(out / "3d_fullres", dataset_json, plans, fingerprint)
    strip_checkpoint(ckpt, out / "3d_fullres" / "fold_0" / "checkpoint_final.pth")
    models["3d_fullres"] = entry(plans, "3d_fullres", "nnUNetPlans", True, False)

    log("untrained models")
    typical = [str(out / "cases" / f) for f in cases["typical"]["files"]]
    plans_r = json.loads((pre / REGION_NAME / "nnUNetPlans.json").read_text())
    dj_r = json.loads((pre / REGION_NAME / "dataset.json").read_text())
    plans_e = json.loads((pre / DATASET_NAME / "nnUNetResEncUNetMPlans.json").read_text())
    untrained = [("2d", dataset_json, plans, "2d", "nnUNetPlans", 2, False),
                 ("regions_3d_fullres", dj_r, plans_r, "3d_fullres", "nnUNetPlans", 3, True),
                 ("resencm_3d_fullres", dataset_json, plans_e, "3d_fullres", "nnUNetResEncUNetMPlans", 4, False)]
    for m, dj, plans_m, configuration, plans_name, seed, region_based in untrained:
        write_model_folder(out / m, dj, plans_m, fingerprint)
        save_untrained(out / m / "fold_0" / "checkpoint_final.pth", plans_m, configuration, dj, seed=seed,
                       calibration_files=typical)
        models[m] = entry(plans_m, configuration, plans_name, False, region_based)

    log("nnU-Net predictions")
    runs = [("3d_fullres", "tta", True, list(cases)), ("3d_fullres", "no_tta", False, list(cases)),
            ("regions_3d_fullres", "tta", True, ["typical", "cropped"]),
            ("2d", "tta", True, ["typical", "aniso"]),
            ("resencm_3d_fullres", "tta", True, ["small"])]
    references = []
    pred_seconds = {}
    for model, setting, mirror, names in runs:
        d = out / "reference" / model / setting
        secs = predict(out / model, out / "cases", cases, names, d, mirror)
        pred_seconds[f"{model}/{setting}"] = secs
        references.append({"model": model, "setting": setting, "dir": f"reference/{model}/{setting}",
                           "use_mirroring": mirror, "tile_step_size": 0.5, "cases": names,
                           "files": {n: {"labels": f"{n}.nii.gz", "probabilities": f"{n}.npz"} for n in names}})
    TIMINGS["nnunet_predict_seconds_per_case"] = pred_seconds

    log("nnU-Net preprocessing records")
    pre_names = ["aniso", "cropped", "small"]
    record_preprocessing(out / "3d_fullres", out / "cases", cases, pre_names, out / "preprocessed" / "3d_fullres")

    manifest = {
        "generator": "scripts/make_nnunet_fixtures.py", "nnunetv2_version": _nnunet_version(),
        "channel_names": CHANNELS,
        "models": {k: {"dir": k, "folds": [0], **v} for k, v in models.items()},
        "cases": cases,
        "references": references,
        "preprocessed": [{"model": "3d_fullres", "configuration": "3d_fullres", "dir": "preprocessed/3d_fullres",
                          "cases": pre_names,
                          "files": {n: {"data": f"{n}.npz", "properties": f"{n}.json"} for n in pre_names}}],
        "notes": {
            "widths": f"planner widths (base/max features): Dataset901 nnUNetPlans {BASE_FEATURES}/{MAX_FEATURES} "
                      f"(3d_fullres trained, 2d untrained), Dataset902 {UNTRAINED_BASE}/{UNTRAINED_MAX}, "
                      f"ResEncM {RESENC_BASE}/{RESENC_MAX}",
            "untrained": f"untrained models: nnU-Net-built network, seeded, seg layers (weights and biases) "
                         f"x{SEG_LAYER_GAIN}, then the last seg layer's biases shifted so that labels/regions 1, 2 "
                         f"cover {list(TARGET_FRACTIONS)} of the typical case's cropped voxels (nnU-Net TTA logits)",
            "checkpoints": "optimizer_state and grad_scaler_state removed",
        },
        "timings": TIMINGS,
    }
    write_json(manifest, out / "manifest.json")
    write_json(TIMINGS, timings_file)
    log(f"done: {out}")
    if args.install:
        install(out, Path(__file__).resolve().parent.parent)
    return 0


GENERATED = ("manifest.json", "cases", "reference", "preprocessed",
             "3d_fullres", "2d", "regions_3d_fullres", "resencm_3d_fullres")


def install(out: Path, repo: Path) -> None:
    """Replace the generated fixtures in the repository (tests/data/nnunet/README.md is kept)."""
    targets = [(out / name, repo / "tests" / "data" / "nnunet" / name) for name in GENERATED]
    for src, dst in targets:
        if dst.is_dir():
            shutil.rmtree(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    log(f"installed into {repo}")


if __name__ == "__main__":
    sys.exit(main())
