"""A tiny planned + preprocessed dataset (real NIfTI files, our planner) and a tiny network."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "planning"))
from planning_helpers import make_dataset  # noqa: E402

TINY_FEATURES = [4, 8, 16]


def plan_tiny_dataset(root: Path, dataset_id: int = 41, name: str = "Blob", cases: int = 6, num_labels: int = 2,
                      shape=(16, 20, 20), regions: bool = False, channels=("T1",)) -> dict:
    """Raw dataset -> fingerprint, plans (with a tiny 3-stage U-Net) -> preprocessed 3d_fullres."""
    from chimerax.medseg.planning.run import plan_dataset
    raw = make_dataset(root / "raw", dataset_id, name, [shape] * cases, [(1.0, 1.0, 1.0)] * cases, list(channels),
                       num_labels=num_labels, seed=dataset_id, regions=regions)
    pre = root / "preprocessed" / raw.name
    result = plan_dataset(str(raw), configurations=["3d_fullres"], num_processes=1, foreground_samples=1e4,
                          output=str(pre), verify=False)
    plans_file = Path(result["plans_file"])
    plans = json.loads(plans_file.read_text())
    kw = plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]
    assert kw["n_stages"] == 3, "the tiny dataset should plan a 3-stage network"
    kw["features_per_stage"] = TINY_FEATURES
    plans["configurations"]["3d_fullres"]["patch_size"] = [16, 16, 16]
    plans_file.write_text(json.dumps(plans, indent=1))
    return {"raw": raw, "preprocessed": pre, "results": root / "results", "plans": plans}


def cli_env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return env


def run_cli(args: list[str], timeout: int = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chimerax.medseg.cli", *args], env=cli_env(), capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def train_args(data: dict, *extra: str) -> list[str]:
    return ["train", str(data["raw"]), "3d_fullres", "--preprocessed", str(data["preprocessed"]),
            "-o", str(data["results"]), "--device", "cpu", "--workers", "0", *extra]
