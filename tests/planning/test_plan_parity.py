"""Parity with the real nnU-Net v2 (oracle): fingerprint, plans (default + ResEnc presets), preprocessed arrays."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from planning_helpers import make_dataset, run_nnunet  # noqa: E402

from chimerax.medseg.datasets.dataset_json import load_dataset
from chimerax.medseg.datasets.dataset_json import read_training_case
from chimerax.medseg.planning.fingerprint import extract_fingerprint
from chimerax.medseg.planning.planner import plan_experiment
from chimerax.medseg.preprocessing.to_disk import preprocess_arrays

SAMPLES = 1e5  # pooled foreground samples on both sides (nnU-Net's 1e8 default only costs time here)
PRESETS = {"default": ("ExperimentPlanner", "nnUNetPlans"), "resenc_m": ("nnUNetPlannerResEncM", "nnUNetResEncUNetMPlans"),
           "resenc_l": ("nnUNetPlannerResEncL", "nnUNetResEncUNetLPlans"),
           "resenc_xl": ("nnUNetPlannerResEncXL", "nnUNetResEncUNetXLPlans")}
REAL = {21: "IsoMR", 22: "ThickCT", 23: "Tiny"}
LOWRES = 24  # planned from a written fingerprint of large images


def _lowres_fingerprint(rng) -> dict:
    shapes = [[int(rng.randint(380, 460)), int(rng.randint(420, 512)), int(rng.randint(420, 512))] for _ in range(12)]
    spacings = [[float(rng.choice([0.8, 1.0, 1.25])), 0.78, 0.78] for _ in range(12)]
    stats = {"0": {"mean": 80.0, "median": 85.0, "std": 40.0, "min": -500.0, "max": 900.0,
                   "percentile_99_5": 300.0, "percentile_00_5": -100.0}}
    return {"spacings": spacings, "shapes_after_crop": shapes, "foreground_intensity_properties_per_channel": stats,
            "median_relative_size_after_cropping": 0.9}


ORACLE = """
import json, os, multiprocessing
import numpy as np
_get = multiprocessing.get_context
multiprocessing.get_context = lambda method=None: _get("fork")  # fork instead of spawn: same code, faster start
from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor
_init = DatasetFingerprintExtractor.__init__
def _init_small(self, *a, **k):
    _init(self, *a, **k)
    self.num_foreground_voxels_for_intensitystats = {samples}
DatasetFingerprintExtractor.__init__ = _init_small
from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, plan_experiment_dataset
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import (
    nnUNetPlannerResEncM, nnUNetPlannerResEncL, nnUNetPlannerResEncXL)
from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
extract_fingerprints({real_ids}, num_processes=1, check_dataset_integrity=False, clean=True, verbose=False)
for i in {all_ids}:
    for cls in (ExperimentPlanner, nnUNetPlannerResEncM, nnUNetPlannerResEncL, nnUNetPlannerResEncXL):
        cls(i).plan_experiment()
pre, raw = os.environ['nnUNet_preprocessed'], os.environ['nnUNet_raw']
for name in {real_names}:
    pm = PlansManager(f'{{pre}}/{{name}}/nnUNetPlans.json')
    meta = json.load(open(f'{{raw}}/{{name}}/dataset.json'))
    images = [f'{{raw}}/{{name}}/imagesTr/case001_{{c:04d}}.nii.gz' for c in range(len(meta['channel_names']))]
    for cfg in ('3d_fullres', '2d'):
        d, s, p = DefaultPreprocessor(verbose=False).run_case(images, f'{{raw}}/{{name}}/labelsTr/case001.nii.gz', pm,
                                                               pm.get_configuration(cfg), meta)
        np.save(f'{{pre}}/{{name}}/{{cfg}}_data.npy', d)
        np.save(f'{{pre}}/{{name}}/{{cfg}}_seg.npy', s)
        json.dump({{'bbox': [list(map(int, b)) for b in p['bbox_used_for_cropping']]}}, open(f'{{pre}}/{{name}}/{{cfg}}_props.json', 'w'))
"""


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity")
    raw, pre = root / "raw", root / "pre"
    rng = np.random.RandomState(7)
    # isotropic MRI-like, 2 channels, zero border (non-zero mask used), slightly varying spacing (3D resampling)
    make_dataset(raw, 21, REAL[21], [(36 + rng.randint(5), 40 + rng.randint(5), 38 + rng.randint(5)) for _ in range(4)],
                 [(1.0, 1.0, 1.0), (1.1, 0.9, 1.05), (0.95, 1.0, 1.0), (1.0, 1.1, 0.9)], ["T1", "T2"], border=6)
    # CT-like with thick slices along the file's x axis (transpose, 10th-percentile spacing, separate-z resampling)
    make_dataset(raw, 22, REAL[22], [(56 + i, 48, 9 + i) for i in range(4)],
                 [(0.8, 0.8, 4.0), (0.8, 0.8, 5.0), (0.75, 0.75, 6.0), (0.8, 0.8, 3.5)], ["CT"], ct=True, seed=1)
    # very small images, region labels
    make_dataset(raw, 23, REAL[23], [(8, 10, 9), (9, 10, 8), (8, 9, 9)], [(1.2, 1.0, 1.0)] * 3, ["MR"], seed=2,
                 regions=True)
    # large images (fingerprint shortcut): tiny files so nnU-Net can open the dataset, the fingerprint written by hand
    make_dataset(raw, LOWRES, "LargeCT", [(4, 4, 4)] * 12, [(1.0, 0.78, 0.78)] * 12, ["CT"], seed=3)
    (pre / f"Dataset{LOWRES:03d}_LargeCT").mkdir(parents=True)
    (pre / f"Dataset{LOWRES:03d}_LargeCT" / "dataset_fingerprint.json").write_text(
        json.dumps(_lowres_fingerprint(rng)))
    names = [f"Dataset{i:03d}_{n}" for i, n in REAL.items()]
    run_nnunet(ORACLE.format(samples=SAMPLES, real_ids=list(REAL), all_ids=[*REAL, LOWRES], real_names=names), raw, pre)
    return raw, pre


def _datasets(raw):
    return sorted(p for p in raw.iterdir() if p.is_dir())


@pytest.mark.parametrize("dataset_id", list(REAL))
def test_fingerprint_matches_nnunet(oracle, dataset_id):
    raw, pre = oracle
    folder = next(p for p in _datasets(raw) if p.name.startswith(f"Dataset{dataset_id:03d}"))
    ours = extract_fingerprint(load_dataset(folder), num_processes=1, foreground_samples=SAMPLES)
    theirs = json.loads((pre / folder.name / "dataset_fingerprint.json").read_text())
    assert ours == theirs


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("dataset_id", [*REAL, LOWRES])
def test_plans_match_nnunet(oracle, dataset_id, preset):
    raw, pre = oracle
    folder = next(p for p in _datasets(raw) if p.name.startswith(f"Dataset{dataset_id:03d}"))
    fingerprint = json.loads((pre / folder.name / "dataset_fingerprint.json").read_text())
    ours, notes = plan_experiment(load_dataset(folder).meta, fingerprint, folder.name, preset)
    theirs = json.loads((pre / folder.name / f"{PRESETS[preset][1]}.json").read_text())
    assert ours["configurations"].keys() == theirs["configurations"].keys()
    for name, config in theirs["configurations"].items():
        assert ours["configurations"][name] == config, f"{folder.name} {preset} {name}"
    assert ours == theirs
    assert notes.per_configuration["3d_fullres"]


def test_the_parity_datasets_cover_the_geometries(oracle):
    _, pre = oracle
    plans = {p.name: json.loads((p / "nnUNetPlans.json").read_text()) for p in sorted(pre.iterdir())}
    large = plans[f"Dataset{LOWRES:03d}_LargeCT"]
    assert "3d_lowres" in large["configurations"] and "3d_cascade_fullres" in large["configurations"]
    thick = plans["Dataset022_ThickCT"]
    assert thick["transpose_forward"] == [2, 0, 1]
    assert thick["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["kernel_sizes"][0][0] == 1
    tiny = plans["Dataset023_Tiny"]["configurations"]["3d_fullres"]
    assert tiny["architecture"]["arch_kwargs"]["n_stages"] <= 3
    iso = plans["Dataset021_IsoMR"]["configurations"]["3d_fullres"]
    assert iso["use_mask_for_norm"] == [True, True]


@pytest.mark.parametrize("configuration", ["3d_fullres", "2d"])
@pytest.mark.parametrize("dataset_id", list(REAL))
def test_preprocessed_case_matches_nnunet(oracle, dataset_id, configuration):
    raw, pre = oracle
    folder = next(p for p in _datasets(raw) if p.name.startswith(f"Dataset{dataset_id:03d}"))
    dataset = load_dataset(folder)
    plans = json.loads((pre / folder.name / "nnUNetPlans.json").read_text())
    case = dataset.training_cases()[1]
    image, seg = read_training_case(case)
    data, labels, props, _ = preprocess_arrays(image.array, seg, image.spacing, plans, configuration,
                                               dataset.foreground_classes())
    ref_data = np.load(pre / folder.name / f"{configuration}_data.npy")
    ref_seg = np.load(pre / folder.name / f"{configuration}_seg.npy")
    assert props["bbox_used_for_cropping"] == json.loads(
        (pre / folder.name / f"{configuration}_props.json").read_text())["bbox"]
    assert data.shape == ref_data.shape and labels.shape == ref_seg.shape
    resampled = tuple(props["shape_after_cropping_and_before_resampling"]) != data.shape[1:]
    if not resampled:
        np.testing.assert_array_equal(data, ref_data)  # crop + normalization: identical
        np.testing.assert_array_equal(labels, ref_seg)
    else:
        # stated tolerance after resampling: 1e-4 (normalized units) and < 0.5 % of label voxels
        assert np.abs(data - ref_data).max() < 1e-4
        assert (labels != ref_seg).mean() < 0.005
