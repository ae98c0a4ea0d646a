"""Parity with nnU-Net's own predictions, recorded by scripts/make_nnunet_fixtures.py (real nnunetv2 2.8.1).

Models: a 3d_fullres model trained by nnU-Net on a synthetic 2-channel dataset, plus nnU-Net-built
2d, region-based and ResEnc-M models; cases: anisotropic (separate-z resampling), cropped,
smaller than the patch, rotated/flipped affines. Requirement: per-class Dice >= 0.99 and
probabilities within 0.02 of nnU-Net's everywhere.
"""
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from chimerax.medseg.images import read_case
from chimerax.medseg.inference.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1] / "data" / "nnunet"
MANIFEST = json.loads((ROOT / "manifest.json").read_text())
RUNS = [(ref["model"], ref["setting"], case) for ref in MANIFEST["references"] for case in ref["cases"]]


def _reference(model: str, setting: str) -> dict:
    return next(r for r in MANIFEST["references"] if r["model"] == model and r["setting"] == setting)


@pytest.fixture(scope="module")
def predictors():
    cache = {}

    def get(model: str, mirroring: bool, step: float) -> Predictor:
        key = (model, mirroring, step)
        if key not in cache:
            info = MANIFEST["models"][model]
            cache[key] = Predictor.from_folder(ROOT / info["dir"], folds=info["folds"], device="cpu",
                                               mirroring=mirroring, step=step)
        return cache[key]
    return get


def test_fixtures_cover_what_the_issue_asks():
    properties = {p for case in MANIFEST["cases"].values() for p in case["properties"]}
    assert {"anisotropic", "cropped", "smaller_than_patch"} <= properties
    models = MANIFEST["models"].values()
    assert any(m["region_based"] for m in models) and any(m["configuration"] == "2d" for m in models)
    assert any(m["trained"] for m in models)
    assert len({case for _, _, case in RUNS}) >= 3


@pytest.mark.parametrize("model,setting,case", RUNS, ids=[f"{m}-{s}-{c}" for m, s, c in RUNS])
def test_same_answers_as_nnunet(predictors, model, setting, case):
    reference = _reference(model, setting)
    predictor = predictors(model, reference["use_mirroring"], reference["tile_step_size"])
    files = [ROOT / "cases" / name for name in MANIFEST["cases"][case]["files"]]
    ours = predictor.predict(read_case(files), save_probabilities=True)
    folder = ROOT / reference["dir"]
    theirs = np.asarray(nib.load(str(folder / reference["files"][case]["labels"])).dataobj).transpose(2, 1, 0)
    probabilities = np.load(folder / reference["files"][case]["probabilities"])["probabilities"]
    assert ours.labels.shape == theirs.shape
    for value in predictor.label_names:
        a, b = ours.labels == value, theirs == value
        if a.sum() + b.sum():
            assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.99, f"label {value}"
    assert probabilities.shape == ours.probabilities.shape
    assert np.abs(ours.probabilities - probabilities.astype(np.float32)).max() <= 0.02
