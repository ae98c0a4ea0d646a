#!/usr/bin/env python3
"""Random-weight TotalSegmentator models and TotalSegmentator's own answers on them, for the parity tests.

Writes tests/data/totalseg/:
  weights/DatasetNNN_.../<Trainer>__nnUNetPlans__3d_fullres/   the five 1.5 mm `total` parts (291-295) and the
      6 mm model (298) with TotalSegmentator's dataset names, trainer names and class maps; tiny networks built
      by nnU-Net's own code from the plans, seeded random weights with a spread last-layer bias so the labels vary
  cases/ct.nii.gz, ct_lps.nii.gz, ct_oblique.nii.gz   a crop of TotalSegmentator's example_ct_sm.nii.gz (real CT),
      the same voxels stored LPS, and with a rotated affine
  reference/<case>.nii.gz, <case>_roi.nii.gz, <case>_statistics.json   TotalSegmentator 2.18 (python API, CPU) on
      them: task total, and --roi_subset ROI_SUBSET; statistics as its statistics.json
  other_weights/Dataset299_body_1559subj/...   TotalSegmentator's 1.5 mm `body` model (random weights, biased so
      that both of its clean-ups change the labels); reference/ct_body.nii.gz: task body on ct.nii.gz
  other_weights/Dataset803_.../...   its `vertebrae_pp` model; reference/ct_vertebrae_pp.nii.gz: that task; and
      alike its `body_mr` (597) and `vertebrae_body` (305) models, which it does not clean up
  crop_weights/Dataset789_kidney_cyst_501subj/... (with its auxiliary kidney labels) beside a copy of the 6 mm
      model that finds its crop; reference/ct_kidney_cysts.nii.gz: task kidney_cysts
  cases/ct_tall.nii.gz, reference/ct_tall.nii.gz, ct_tall_split.nii.gz   a crop with every slice (60 at 1.5 mm,
      enough for TotalSegmentator's split in three), and task total on it without and with --force_split

TotalSegmentator finds the weights through TOTALSEG_HOME_DIR (a temporary copy here), with usage statistics
off; it downloads nothing. Needs the `test,oracle` extras and the sdist's example CT (fetched from PyPI):

    .venv/bin/python scripts/make_totalseg_fixtures.py            # everything (weights, cases, answers)
    .venv/bin/python scripts/make_totalseg_fixtures.py --split    # only the tall case and its answers
    .venv/bin/python scripts/make_totalseg_fixtures.py --other-tasks  # only other_weights and their answers
    .venv/bin/python scripts/make_totalseg_fixtures.py --crop-tasks   # only crop_weights and their answers
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import types
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "totalseg"
VERSION = "2.18.0"
ROI_SUBSET = ["liver", "vertebrae_L1", "heart", "rib_left_5"]  # one structure of four parts; the ribs are in part 5
CROP = (slice(40, 80), slice(30, 70), slice(4, 26))  # x, y, z of example_ct_sm (122 x 101 x 30 at 3 mm)
TALL_CROP = (slice(40, 80), slice(30, 70), slice(0, 30))  # every slice: 60 at 1.5 mm, 58 are needed to split
FEATURES = [4, 8, 16]
BACKGROUND_BIAS = 6.0
PARTS = {291: "nnUNetTrainerNoMirroring", 292: "nnUNetTrainerNoMirroring", 293: "nnUNetTrainerNoMirroring",
         294: "nnUNetTrainerNoMirroring", 295: "nnUNetTrainerNoMirroring", 298: "nnUNetTrainer_4000epochs_NoMirroring"}
OTHER_TASKS = {299: "body", 803: "vertebrae_pp", 597: "body_mr", 305: "vertebrae_body"}  # dataset id -> task
OTHER_TRAINERS = {299: "nnUNetTrainer", 803: "nnUNetTrainerNoMirroring", 597: "nnUNetTrainer_DASegOrd0",
                  305: "nnUNetTrainer_DASegOrd0"}
# tasks predicted inside the 6 mm model's crop: dataset id -> (task, trainer); in crop_weights/ beside a copy of 298
CROP_TASKS = {789: ("kidney_cysts", "nnUNetTrainer_DASegOrd0_NoMirroring")}
# the body model's biases (background, trunk, extremities): several trunk components and extremities' components
# on both sides of TotalSegmentator's 50 000 mm3, so that both of its clean-ups change the labels
BODY_BIAS = [0.0, 0.0, 1.0]
CT_STATS = {"max": 3000.0, "mean": 80.0, "median": 60.0, "min": -1024.0, "percentile_00_5": -990.0,
            "percentile_99_5": 1400.0, "std": 350.0}


def _architecture() -> dict:
    return {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": 3, "features_per_stage": FEATURES, "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
            "n_conv_per_stage": [1, 1, 1], "n_conv_per_stage_decoder": [1, 1], "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True}},
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }


def _plans(dataset: str, spacing: float, patch: list[int]) -> dict:
    config = {
        "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": patch, "median_image_size_in_voxels": [100, 100, 100], "spacing": [spacing] * 3,
        "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
        "architecture": _architecture(), "batch_dice": False,
    }
    return {"dataset_name": dataset, "plans_name": "nnUNetPlans", "image_reader_writer": "SimpleITKIO",
            "original_median_spacing_after_transp": [spacing] * 3, "original_median_shape_after_transp": [100] * 3,
            "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2], "label_manager": "LabelManager",
            "experiment_planner_used": "scripts/make_totalseg_fixtures.py",
            "foreground_intensity_properties_per_channel": {"0": CT_STATS},
            "configurations": {"3d_fullres": config}}


def _part_labels(task_id: int) -> tuple[str, dict[str, int]]:
    from totalsegmentator.map_tasks_config import TASK_ID_WEIGHTS_CONFIGS
    from totalsegmentator.map_to_binary import class_map, class_map_5_parts, map_taskid_to_partname_ct

    dataset = TASK_ID_WEIGHTS_CONFIGS[task_id]["foldername"]
    if task_id in OTHER_TASKS or task_id in CROP_TASKS:
        task = OTHER_TASKS.get(task_id) or CROP_TASKS[task_id][0]
        names = {**class_map[task], **class_map.get(f"{task}_auxiliary", {})}  # the labels its model predicts
    else:
        names = class_map["total"] if task_id == 298 else class_map_5_parts[map_taskid_to_partname_ct[task_id]]
    return dataset, {"background": 0, **{v: int(k) for k, v in sorted(names.items())}}


def make_model(weights: Path, task_id: int, trainer: str) -> Path:
    """One model folder, its network built by nnU-Net from the plans, weights seeded by the dataset id."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    dataset, labels = _part_labels(task_id)
    spacing, patch = (6.0, [16, 32, 32]) if task_id == 298 else (1.5, [32, 32, 32])
    plans = _plans(dataset, spacing, patch)
    info = {"channel_names": {"0": "CT"}, "labels": labels, "numTraining": 1, "file_ending": ".nii.gz"}
    manager = PlansManager(plans)
    config = manager.get_configuration("3d_fullres")
    heads = manager.get_label_manager(info).num_segmentation_heads
    torch.manual_seed(task_id)
    net = get_network_from_plans(config.network_arch_class_name, config.network_arch_init_kwargs,
                                 config.network_arch_init_kwargs_req_import, 1, heads, deep_supervision=False)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        net.decoder.seg_layers[-1].weight.mul_(3)
        bias = torch.randn(heads)  # some classes win often, others rarely
        bias[0] += BACKGROUND_BIAS  # each part labels only some voxels, so later parts overwrite earlier ones in places
        if task_id == 298:  # the coarse model finds the --roi-subset structures, so the crop is not empty
            bias[[labels[name] for name in ROI_SUBSET]] += BACKGROUND_BIAS
        if task_id in (299, 597):
            bias = torch.tensor(BODY_BIAS)
        if task_id == 789:  # the auxiliary kidneys (3, 4) win often: TotalSegmentator clears them
            bias[3:] += BACKGROUND_BIAS
        net.decoder.seg_layers[-1].bias.copy_(bias)
    folder = weights / dataset / f"{trainer}__nnUNetPlans__3d_fullres"
    (folder / "fold_0").mkdir(parents=True, exist_ok=True)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    torch.save({"network_weights": state, "init_args": {"configuration": "3d_fullres"}, "trainer_name": trainer,
                "inference_allowed_mirroring_axes": None}, folder / "fold_0" / "checkpoint_final.pth")
    (folder / "plans.json").write_text(json.dumps(plans, indent=1))
    (folder / "dataset.json").write_text(json.dumps(info, indent=1))
    return folder


def example_ct(crop: tuple[slice, slice, slice] = CROP) -> nib.Nifti1Image:
    """A crop of TotalSegmentator's example_ct_sm.nii.gz from its sdist (PyPI is the only network access)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        "--no-build-isolation", f"totalsegmentator=={VERSION}", "-d", tmp], check=True)
        sdist = next(Path(tmp).glob("totalsegmentator-*.tar.gz"))
        with tarfile.open(sdist) as tar:
            member = tar.extractfile(f"totalsegmentator-{VERSION}/tests/reference_files/example_ct_sm.nii.gz")
            path = Path(tmp) / "ct.nii.gz"
            path.write_bytes(member.read())
        image = nib.load(path)
        data = np.asanyarray(image.dataobj)[crop].astype(np.int16)
        affine = image.affine.copy()
        affine[:3, 3] = image.affine[:3, :3] @ [crop[0].start, crop[1].start, crop[2].start] + image.affine[:3, 3]
        return nib.Nifti1Image(data, affine)


def make_cases(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    ct = example_ct()
    lps = ct.as_reoriented(np.array([[0, -1], [1, -1], [2, 1]]))  # same world, stored right-to-left, front-to-back
    a, b = np.radians(20), np.radians(10)
    rz = np.array([[np.cos(a), -np.sin(a), 0, 0], [np.sin(a), np.cos(a), 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    rx = np.array([[1, 0, 0, 0], [0, np.cos(b), -np.sin(b), 0], [0, np.sin(b), np.cos(b), 0], [0, 0, 0, 1]])
    oblique = nib.Nifti1Image(np.asanyarray(ct.dataobj), rx @ rz @ ct.affine)
    paths = []
    for name, image in (("ct", ct), ("ct_lps", lps), ("ct_oblique", oblique)):
        image.set_data_dtype(np.int16)
        nib.save(image, folder / f"{name}.nii.gz")
        paths.append(folder / f"{name}.nii.gz")
    return paths


class _Stub:
    """Stands in for any name of ``timm`` (see _stub_timm)."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __call__(self, *args, **kwargs):
        return args[0] if args else self


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, self, is_package=True) if name.split(".")[0] == "timm" else None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = lambda attr: _Stub  # type: ignore[attr-defined]
        return module

    def exec_module(self, module) -> None:
        pass


def _stub_timm() -> None:
    """The torchvision wheel that fits torch 2.13 CPU here cannot be imported (../shared/NNUNET_REFERENCE.md), and
    `timm` imports it; nnU-Net's trainer lookup (which TotalSegmentator uses) imports every trainer module, the
    Primus ones import timm, and the lookup crashes. No model here uses timm: stand-ins let the lookup finish."""
    try:
        import torchvision  # noqa: F401
    except Exception:
        sys.meta_path.insert(0, _StubFinder())


def make_tall_case(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    image = example_ct(TALL_CROP)
    image.set_data_dtype(np.int16)
    nib.save(image, folder / "ct_tall.nii.gz")
    return folder / "ct_tall.nii.gz"


@contextlib.contextmanager
def totalsegmentator_home(weights: Path):
    """TotalSegmentator's python API, reading ``weights`` from a temporary TOTALSEG_HOME_DIR."""
    _stub_timm()
    with tempfile.TemporaryDirectory() as home:
        shutil.copytree(weights, Path(home) / "nnunet" / "results")
        (Path(home) / "config.json").write_text(json.dumps({"totalseg_id": "medseg-tests", "send_usage_stats": False,
                                                            "prediction_counter": 0,
                                                            "statistics_disclaimer_shown": True}))
        os.environ["TOTALSEG_HOME_DIR"] = home
        from totalsegmentator.python_api import totalsegmentator

        yield totalsegmentator


COMMON = {"ml": True, "device": "cpu", "quiet": True, "nr_thr_resamp": 1, "nr_thr_saving": 1}


def run_totalsegmentator(weights: Path, cases: list[Path], reference: Path) -> None:
    reference.mkdir(parents=True, exist_ok=True)
    with totalsegmentator_home(weights) as totalsegmentator:
        for case in cases:
            name = case.name.removesuffix(".nii.gz")
            totalsegmentator(case, reference / f"{name}.nii.gz", statistics=reference / f"{name}_statistics.json",
                             **COMMON)
            totalsegmentator(case, reference / f"{name}_roi.nii.gz", roi_subset=ROI_SUBSET, **COMMON)


def run_other_tasks(weights: Path, case: Path, reference: Path) -> None:
    """The single-model tasks with clean-ups of their own (OTHER_TASKS) on the RAS-stored CT."""
    reference.mkdir(parents=True, exist_ok=True)
    with totalsegmentator_home(weights) as totalsegmentator:
        for task in OTHER_TASKS.values():
            totalsegmentator(case, reference / f"ct_{task}.nii.gz", task=task, **COMMON)


def make_other_models(weights: Path) -> None:
    if weights.exists():
        shutil.rmtree(weights)
    for task_id, trainer in OTHER_TRAINERS.items():
        make_model(weights, task_id, trainer)


def make_crop_models(weights: Path, crop_weights: Path) -> None:
    if crop_weights.exists():
        shutil.rmtree(crop_weights)
    for task_id, (_, trainer) in CROP_TASKS.items():
        make_model(crop_weights, task_id, trainer)
    six = next(weights.glob("Dataset298_*"))
    shutil.copytree(six, crop_weights / six.name)  # the crop model, beside, as in TotalSegmentator's folder


def run_crop_tasks(crop_weights: Path, case: Path, reference: Path) -> None:
    reference.mkdir(parents=True, exist_ok=True)
    with totalsegmentator_home(crop_weights) as totalsegmentator:
        for task, _ in CROP_TASKS.values():
            totalsegmentator(case, reference / f"ct_{task}.nii.gz", task=task, **COMMON)


def run_split(weights: Path, case: Path, reference: Path) -> None:
    """Task total on the tall case as it is and in TotalSegmentator's three slabs (--force_split)."""
    reference.mkdir(parents=True, exist_ok=True)
    with totalsegmentator_home(weights) as totalsegmentator:
        totalsegmentator(case, reference / "ct_tall.nii.gz", **COMMON)
        totalsegmentator(case, reference / "ct_tall_split.nii.gz", force_split=True, **COMMON)


def main() -> int:
    weights = OUT / "weights"
    if sys.argv[1:] == ["--split"]:
        run_split(weights, make_tall_case(OUT / "cases"), OUT / "reference")
        return 0
    if sys.argv[1:] == ["--other-tasks"]:
        make_other_models(OUT / "other_weights")
        run_other_tasks(OUT / "other_weights", OUT / "cases" / "ct.nii.gz", OUT / "reference")
        return 0
    if sys.argv[1:] == ["--crop-tasks"]:
        make_crop_models(weights, OUT / "crop_weights")
        run_crop_tasks(OUT / "crop_weights", OUT / "cases" / "ct.nii.gz", OUT / "reference")
        return 0
    if weights.exists():
        shutil.rmtree(weights)
    for task_id, trainer in PARTS.items():
        make_model(weights, task_id, trainer)
    cases = make_cases(OUT / "cases")
    run_totalsegmentator(weights, cases, OUT / "reference")
    run_split(weights, make_tall_case(OUT / "cases"), OUT / "reference")
    make_other_models(OUT / "other_weights")
    run_other_tasks(OUT / "other_weights", OUT / "cases" / "ct.nii.gz", OUT / "reference")
    make_crop_models(weights, OUT / "crop_weights")
    run_crop_tasks(OUT / "crop_weights", OUT / "cases" / "ct.nii.gz", OUT / "reference")
    (OUT / "reference" / "roi_subset.json").write_text(json.dumps(ROI_SUBSET) + "\n")
    print(f"TotalSegmentator fixtures in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
