"""Plans carried over from a pretrained model (`medseg plan --plans-from`) against nnU-Net's own
nnUNetv2_move_plans_between_datasets."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from planning_helpers import make_dataset, run_nnunet  # noqa: E402

from chimerax.medseg.cli import main
from chimerax.medseg.planning.run import plan_dataset

NORMALIZATION_KEYS = ("normalization_schemes", "use_mask_for_norm")


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory):
    """A planned source dataset (CT, 2 mm slices) and an unplanned target (CT, 1 mm, other intensities)."""
    root = tmp_path_factory.mktemp("carry")
    raw, pre = root / "raw", root / "preprocessed"
    source = make_dataset(raw, 51, "Source", [(16, 18, 18)] * 4, [(2.0, 1.0, 1.0)] * 4, ["CT"], ct=True, seed=1)
    target = make_dataset(raw, 52, "Target", [(20, 16, 16)] * 4, [(1.0, 0.8, 0.8)] * 4, ["CT"], ct=True, seed=9)
    plan_dataset(str(source), preprocess=False, verify=False, num_processes=1, foreground_samples=1e4,
                 output=str(pre / source.name))
    return {"raw": raw, "pre": pre, "source": source, "target": target,
            "source_plans": pre / source.name / "nnUNetPlans.json"}


def _carried(data, tmp: Path, keep: bool) -> dict:
    result = plan_dataset(str(data["target"]), preprocess=False, verify=False, num_processes=1,
                          foreground_samples=1e4, output=str(tmp), plans_from=str(data["source_plans"]),
                          plans_name="nnUNetPlansFrom51", keep_source_normalization=keep)
    return json.loads(Path(result["plans_file"]).read_text())


def test_same_as_nnunets_move_plans_and_own_normalization_by_default(two_datasets, tmp_path):
    data = two_datasets
    (data["pre"] / data["target"].name).mkdir(exist_ok=True)
    run_nnunet("""
        from nnunetv2.experiment_planning.plans_for_pretraining.move_plans_between_datasets import \\
            move_plans_between_datasets
        move_plans_between_datasets(51, 52, "nnUNetPlans", "nnUNetPlansFrom51")
        """, data["raw"], data["pre"])
    theirs = json.loads((data["pre"] / data["target"].name / "nnUNetPlansFrom51.json").read_text())
    assert _carried(data, tmp_path / "keep", keep=True) == theirs

    ours = _carried(data, tmp_path / "own", keep=False)
    own = plan_dataset(str(data["target"]), preprocess=False, verify=False, num_processes=1, foreground_samples=1e4,
                       output=str(tmp_path / "planned"))["plans"]
    source = json.loads(data["source_plans"].read_text())
    # the target's own planning would choose another network: the carried plans keep the source's
    assert own["configurations"]["3d_fullres"]["spacing"] != source["configurations"]["3d_fullres"]["spacing"]
    assert ours["foreground_intensity_properties_per_channel"] == own["foreground_intensity_properties_per_channel"]
    assert ours["foreground_intensity_properties_per_channel"] != source["foreground_intensity_properties_per_channel"]
    for name, config in ours["configurations"].items():
        mine = {k: v for k, v in config.items() if k not in NORMALIZATION_KEYS}
        assert mine == {k: v for k, v in theirs["configurations"][name].items() if k not in NORMALIZATION_KEYS}
        if "normalization_schemes" in config:
            expected = [own["configurations"]["2d"][k] for k in NORMALIZATION_KEYS]
            assert [config[k] for k in NORMALIZATION_KEYS] == expected
    rest = {k: v for k, v in ours.items() if k not in ("configurations", "foreground_intensity_properties_per_channel")}
    assert rest == {k: v for k, v in theirs.items() if k in rest} and rest.keys() == theirs.keys() - {
        "configurations", "foreground_intensity_properties_per_channel"}


def test_cli_carries_preprocesses_and_names_the_plans(two_datasets, tmp_path, capsys):
    data = two_datasets
    out = tmp_path / "cli"
    assert main(["plan", str(data["target"]), "--plans-from", str(data["source_plans"]), "-c", "3d_fullres",
                 "--no-verify", "-np", "1", "--intensity-samples", "1e4", "-o", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "Plans carried over from" in printed and "this dataset's own channels" in printed
    plans = json.loads((out / "nnUNetPlans_from_Dataset051_Source.json").read_text())
    identifier = plans["configurations"]["3d_fullres"]["data_identifier"]
    assert identifier == "nnUNetPlans_from_Dataset051_Source_3d_fullres"
    assert len(list((out / identifier).glob("case*_seg.npy"))) == 4
    assert main(["plan", str(data["target"]), "--plans-name", "X", "-o", str(tmp_path / "bad")]) == 1
    assert "go with --plans-from" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
