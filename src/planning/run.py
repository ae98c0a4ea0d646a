"""``medseg plan``: fingerprint -> plans -> preprocessed cases, writing nnU-Net's files."""
from __future__ import annotations

from pathlib import Path

from ..datasets.dataset_json import load_dataset
from ..datasets.paths import find_dataset, preprocessed_folder
from ..datasets.verify import verify_dataset
from ..errors import MedSegError
from ..fileio import atomic_path, read_json, write_json
from ..option_ranges import check_float, check_int
from ..preprocessing.to_disk import preprocess_dataset
from .carry_plans import carried_plans, default_plans_name, source_plans
from .fingerprint import FOREGROUND_SAMPLES_TOTAL, extract_fingerprint, fingerprint_path
from .planner import plan_experiment
from .summary import summarize_plans


def plan_dataset(id_or_name: str, preset: str = "default", configurations: list[str] | None = None,
                 num_processes: int = 2, preprocess: bool = True, verify: bool = True,
                 output: str | None = None, gpu_memory_gb: float | None = None, progress=None,
                 foreground_samples: float = FOREGROUND_SAMPLES_TOTAL, base_features: int | None = None,
                 max_features: int | None = None, plans_from: str | None = None, plans_name: str | None = None,
                 keep_source_normalization: bool = False) -> dict:
    """Run the whole planning stage; returns paths, the plans and the readable summary.

    ``plans_from`` (a pretrained model or a plans file) carries its plans over instead of planning
    (transfer learning, see ``carry_plans.py``); they are saved as ``plans_name``.
    """
    check_plan_options(num_processes, gpu_memory_gb, foreground_samples, base_features, max_features)
    folder = find_dataset(id_or_name)
    if verify:
        report = verify_dataset(folder, num_processes)
        if not report.ok:
            raise MedSegError(f"{folder.name} has {len(report.errors)} problem(s); first: {report.errors[0]} "
                              f"Run `medseg dataset verify {folder.name}` for the full list.")
    dataset = load_dataset(folder)
    out = Path(output) if output else preprocessed_folder(folder)
    out.mkdir(parents=True, exist_ok=True)
    fp_file = fingerprint_path(out)
    fingerprint = read_json(fp_file) if fp_file.is_file() else None
    if fingerprint is None or len(fingerprint["spacings"]) != len(dataset.training_cases()):
        fingerprint = extract_fingerprint(dataset, num_processes, progress, foreground_samples)
        write_json(fp_file, fingerprint)
    if plans_from:
        source, source_configuration, described = source_plans(plans_from)
        plans, notes = carried_plans(source, dataset.meta, fingerprint, folder.name,
                                     plans_name or default_plans_name(source), keep_source_normalization, described)
        if configurations is None and source_configuration:  # only the pretrained model's configuration
            configurations = [source_configuration]
    else:
        plans, notes = plan_experiment(dataset.meta, fingerprint, folder.name, preset, gpu_memory_gb,
                                       base_features, max_features)
    plans_file = out / f"{plans['plans_name']}.json"
    write_json(plans_file, plans)
    write_json(out / "dataset.json", dataset.meta)
    summary = summarize_plans(plans, notes, fingerprint)
    with atomic_path(out / f"{plans['plans_name']}_summary.txt") as tmp:
        tmp.write_text(summary + "\n")
    results = {}
    if preprocess:
        wanted = configurations or [c for c in ("2d", "3d_fullres", "3d_lowres") if c in plans["configurations"]]
        for name in wanted:
            results[name] = preprocess_dataset(dataset, plans, name, out, num_processes, progress)
    return {"folder": str(out), "plans_file": str(plans_file), "plans": plans, "summary": summary,
            "preprocessed": results}


def check_plan_options(num_processes: int, gpu_memory_gb: float | None, foreground_samples: float,
                       base_features: int | None, max_features: int | None) -> None:
    """Numbers that parse but make no sense are refused before the fingerprint starts."""
    check_int(num_processes, "--processes", 1, 256)
    check_float(gpu_memory_gb, "--gpu-memory", 0.0, 4096.0)
    check_float(foreground_samples, "--intensity-samples", 0.0)
    check_int(base_features, "--base-features", 1, 4096)
    check_int(max_features, "--max-features", base_features or 1, 65536)
