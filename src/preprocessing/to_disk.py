"""Preprocess every training case to disk for training: transpose, crop, normalize, resample.

Output per configuration, in ``<preprocessed>/<data_identifier>/``:
  ``CASE.npy``            float32 (c, z, y, x) image, the network's input space
  ``CASE_seg.npy``        int8/int16 (1, z, y, x) labels, -1 outside the non-zero mask
  ``CASE_locations.npz``  sampled voxel coordinates per class/region (for foreground oversampling)
  ``CASE.json``           properties to invert it (spacing, transpose, crop box, shapes); written
                          last, so its presence marks a finished case and a rerun skips it.
No pickles: everything loads with ``np.load(allow_pickle=False)`` and ``json``.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from ..datasets.dataset_json import Case, RawDataset, read_training_case
from ..fileio import atomic_path, write_json
from ..models.model_folder import resolve_configuration
from .pipeline import preprocess

LOCATION_SAMPLES = 10000      # per class: this many, or 1 % of its voxels if that is more
LOCATION_MIN_FRACTION = 0.01
LOCATION_SEED = 1234


def _plans_key(plans: dict, configuration: str) -> str:
    """A hash of everything that changes the output, so a rerun after a plans change redoes the case."""
    config = resolve_configuration(plans, configuration)
    relevant = {k: config.get(k) for k in ("spacing", "normalization_schemes", "use_mask_for_norm",
                                           "resampling_fn_data_kwargs", "resampling_fn_seg_kwargs")}
    relevant.update(transpose=plans["transpose_forward"], stats=plans["foreground_intensity_properties_per_channel"])
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def preprocess_arrays(data: np.ndarray, seg: np.ndarray, spacing, plans: dict, configuration: str,
                      foreground_classes: list) -> tuple[np.ndarray, np.ndarray, dict, dict]:
    """(data, seg, properties, class locations) for one case given as arrays in file axis order."""
    data, record, cropped = preprocess(data, spacing, plans, resolve_configuration(plans, configuration), seg=seg)
    assert cropped is not None  # preprocess returns the labels whenever it is given them
    properties = {"spacing": [float(s) for s in spacing],
                  "shape_before_cropping": list(record.shape_before_cropping),
                  "bbox_used_for_cropping": record.bbox,
                  "shape_after_cropping_and_before_resampling": list(record.shape_after_cropping)}
    seg = cropped.astype(np.int16 if cropped.max(initial=0) > 127 else np.int8)
    return data, seg, properties, sample_class_locations(seg, foreground_classes)


def sample_class_locations(seg: np.ndarray, classes: list) -> dict:
    """Random voxel coordinates (rows of (0, z, y, x)) of each class or region, for oversampling."""
    rng = np.random.RandomState(LOCATION_SEED)
    out = {}
    for cls in classes:
        members = list(cls) if isinstance(cls, (tuple, list)) else [cls]
        coords = np.argwhere(np.isin(seg, members))
        if len(coords):
            count = max(min(LOCATION_SAMPLES, len(coords)), int(np.ceil(len(coords) * LOCATION_MIN_FRACTION)))
            coords = coords[rng.choice(len(coords), count, replace=False)]
        out["_".join(str(m) for m in members)] = coords.astype(np.int32)
    return out


def preprocess_case(case: Case, plans: dict, configuration: str, foreground_classes: list, output_dir: Path,
                    key: str) -> str:
    image, seg = read_training_case(case)
    image.check_finite(f"Case {case.name}")
    data, seg, properties, locations = preprocess_arrays(image.array, seg, image.spacing, plans, configuration,
                                                         foreground_classes)
    properties.update(case=case.name, configuration=configuration, plans_key=key,
                      transpose_forward=plans["transpose_forward"], affine=image.affine.tolist())
    with atomic_path(output_dir / f"{case.name}.npy") as tmp:
        np.save(tmp, data, allow_pickle=False)
    with atomic_path(output_dir / f"{case.name}_seg.npy") as tmp:
        np.save(tmp, seg, allow_pickle=False)
    with atomic_path(output_dir / f"{case.name}_locations.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **locations)
    write_json(output_dir / f"{case.name}.json", properties)  # last: marks the case as done
    return case.name


def _is_done(output_dir: Path, name: str, key: str) -> bool:
    props = output_dir / f"{name}.json"
    if not (props.is_file() and (output_dir / f"{name}.npy").is_file() and (output_dir / f"{name}_seg.npy").is_file()):
        return False
    try:
        return json.loads(props.read_text()).get("plans_key") == key
    except (OSError, ValueError):
        return False


def _remove_partial_files(output_dir: Path) -> None:
    """Temporary files left by a process that was killed mid-write."""
    for path in output_dir.glob(".*.part*"):
        path.unlink(missing_ok=True)


def preprocess_dataset(dataset: RawDataset, plans: dict, configuration: str, preprocessed_dir: str | os.PathLike,
                       num_processes: int = 2, progress=None) -> dict:
    """Preprocess all training cases of one configuration; resumes where an interrupted run stopped.

    Returns counts: ``{"done": n_new, "skipped": n_already_done, "folder": path}``.
    """
    config = resolve_configuration(plans, configuration)
    output_dir = Path(preprocessed_dir) / config["data_identifier"]
    output_dir.mkdir(parents=True, exist_ok=True)
    _remove_partial_files(output_dir)
    key = _plans_key(plans, configuration)
    cases = dataset.training_cases()
    todo = [c for c in cases if not _is_done(output_dir, c.name, key)]
    classes = dataset.foreground_classes()
    done = 0
    if num_processes > 1 and len(todo) > 1:
        with ProcessPoolExecutor(min(num_processes, len(todo))) as pool:
            futures = [pool.submit(preprocess_case, c, plans, configuration, classes, output_dir, key) for c in todo]
            for future in as_completed(futures):
                future.result()
                done += 1
                if progress:
                    progress(done / len(todo), f"{configuration}: {done}/{len(todo)} cases")
    else:
        for case in todo:
            preprocess_case(case, plans, configuration, classes, output_dir, key)
            done += 1
            if progress:
                progress(done / len(todo), f"{configuration}: {done}/{len(todo)} cases")
    return {"done": done, "skipped": len(cases) - len(todo), "folder": str(output_dir)}
