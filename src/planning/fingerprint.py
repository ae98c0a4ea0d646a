"""The dataset fingerprint (``dataset_fingerprint.json``, nnU-Net's keys): what planning decides from.

Per case: spacing, shape after cropping to the non-zero region, how much cropping removed, and a
random sample of foreground intensities (label > 0) per channel. Over the dataset: intensity
statistics of the pooled foreground samples (used by CT normalization).
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..datasets.dataset_json import Case, RawDataset, read_training_case
from ..errors import MedSegError
from ..preprocessing.cropping import crop_case

FOREGROUND_SAMPLES_TOTAL = 10e7  # pooled over the dataset; enough for stable percentiles
SAMPLING_SEED = 1234


def analyze_case(case: Case, num_samples: int) -> dict:
    image, seg = read_training_case(case)
    cropped, seg_cropped, _, _ = crop_case(image.array, seg)
    foreground = seg_cropped[0] > 0
    rng = np.random.RandomState(SAMPLING_SEED)
    samples = []
    for channel in cropped:
        values = channel[foreground]
        # with replacement, so small structures are as well represented as big ones
        samples.append(rng.choice(values, num_samples, replace=True) if values.size else np.zeros(0, np.float32))
    return {
        "spacing": [float(s) for s in image.spacing],
        "shape_after_crop": [int(s) for s in cropped.shape[1:]],
        "relative_size": float(np.prod(cropped.shape[1:]) / np.prod(image.shape)),
        "samples": samples,
    }


def _analyze_job(args):
    return analyze_case(*args)


def extract_fingerprint(dataset: RawDataset, num_processes: int = 2, progress=None,
                        foreground_samples: float = FOREGROUND_SAMPLES_TOTAL) -> dict:
    """nnU-Net's dataset fingerprint; ``foreground_samples`` is the pooled intensity sample size."""
    cases = dataset.training_cases()
    if not cases:
        raise MedSegError(f"No training cases in {dataset.folder}. Run `medseg dataset verify` to see why.")
    per_case = int(foreground_samples // len(cases))
    jobs = [(case, per_case) for case in cases]
    results = []
    if num_processes > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(num_processes, len(jobs))) as pool:
            for i, result in enumerate(pool.map(_analyze_job, jobs)):
                results.append(result)
                if progress:
                    progress((i + 1) / len(jobs), f"fingerprint {i + 1}/{len(jobs)}")
    else:
        for i, job in enumerate(jobs):
            results.append(_analyze_job(job))
            if progress:
                progress((i + 1) / len(jobs), f"fingerprint {i + 1}/{len(jobs)}")
    stats = {}
    for c in range(dataset.num_channels):
        pooled = np.concatenate([r["samples"][c] for r in results])
        if pooled.size == 0:
            raise MedSegError(f"No foreground voxels in any label of {dataset.folder.name}; every label is empty. "
                              "Check labelsTr (run `medseg dataset verify`).")
        low, median, high = np.percentile(pooled, np.array((0.5, 50.0, 99.5)))
        stats[str(c)] = {
            "mean": float(np.mean(pooled)), "median": float(median), "std": float(np.std(pooled)),
            "min": float(np.min(pooled)), "max": float(np.max(pooled)),
            "percentile_99_5": float(high), "percentile_00_5": float(low),
        }
    return {
        "spacings": [r["spacing"] for r in results],
        "shapes_after_crop": [r["shape_after_crop"] for r in results],
        "foreground_intensity_properties_per_channel": stats,
        "median_relative_size_after_cropping": float(np.median([r["relative_size"] for r in results])),
    }


def fingerprint_path(preprocessed: str | os.PathLike) -> Path:
    return Path(preprocessed) / "dataset_fingerprint.json"
