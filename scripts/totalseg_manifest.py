#!/usr/bin/env python3
"""Write TotalSegmentator's models into src/models_manifest.json, with the facts read from the real package.

Reads the installed `totalsegmentator` (the `test` extra pins it): each task's dataset ids, release,
trainer, resampling, crop, and class maps (combined and per part). Writes one manifest entry per
open task (licence-key tasks are left out: they cannot be downloaded without a key), each with a
`conventions` object (models/conventions.py) telling the pipeline to predict as TotalSegmentator does.
Entries already in the manifest keep their other fields. Run again after a TotalSegmentator update:

    .venv/bin/python scripts/totalseg_manifest.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from totalsegmentator import map_to_binary as maps
from totalsegmentator.map_tasks_config import TASK_CONFIGS, TASK_ID_WEIGHTS_CONFIGS

MANIFEST = Path(__file__).resolve().parents[1] / "src" / "models_manifest.json"
RELEASES = "https://github.com/wasserth/TotalSegmentator/releases/download"
CITE_CT = ("Wasserthal J., Breit H.-C., Meyer M.T., et al. TotalSegmentator: Robust Segmentation of 104 Anatomic "
           "Structures in CT Images. Radiology: Artificial Intelligence 2023. https://doi.org/10.1148/ryai.230024 "
           "(please also cite nnU-Net: Isensee F., et al. Nature Methods 2021. "
           "https://doi.org/10.1038/s41592-020-01008-z)")
CITE_MR = ("D'Antonoli T.A., Berger L.K., Indrakanti A.K., et al. TotalSegmentator MRI: Robust Sequence-independent "
           "Segmentation of Multiple Anatomic Structures in MRI. Radiology 2025. https://doi.org/10.1148/radiol.241613 "
           "(please also cite nnU-Net: Isensee F., et al. Nature Methods 2021. "
           "https://doi.org/10.1038/s41592-020-01008-z)")
# the task names TotalSegmentator steps tiles by 0.8 of the patch for (its nnunet.py); every other task by 0.5
STEP_08_TASKS = ("total", "total_v3", "total_mr")
# the clean-ups TotalSegmentator 2.18 applies to a task's labels on the model grid (written out in its nnunet.py,
# not in its task list): models/conventions.CleanUp
CLEAN_UPS = {"body": [{"kind": "largest_component", "structures": ["body_trunc"]},
                      {"kind": "remove_small_components", "structures": ["body_extremities"], "min_mm3": 50000}],
             # postprocess_vertebrae_pp's defaults, as nnunet.py calls it: components of >= 100 mm3, grown 3 mm
             "vertebrae_pp": [{"kind": "relabel_vertebrae", "min_mm3": 100, "dilation_mm": 3,
                               "structures": list(maps.class_map["vertebrae_pp"].values())}]}
# (manifest name, TotalSegmentator task, sub-mode or None, description)
TASKS = [
    ("totalseg_total", "total", "default", "TotalSegmentator v2 'total' task at 1.5 mm (its default): 117 anatomical "
     "structures in CT, five part models (organs, vertebrae, cardiac, muscles, ribs) run in turn and merged."),
    ("totalseg_total_v3", "total_v3", "default", "TotalSegmentator v3 'total_v3' task at 1.5 mm: anatomical structures "
     "in CT, five part models run in turn and merged."),
    ("totalseg_total_mr", "total_mr", "default", "TotalSegmentator MRI 'total_mr' task at 1.5 mm (its default): 50 "
     "anatomical structures in MRI (any sequence), two part models (organs, muscles) merged."),
    ("totalseg_total_3mm", "total", "fast", None),
    ("totalseg_total_6mm", "total", "fastest", None),
    ("totalseg_total_mr_3mm", "total_mr", "fast", None),
    ("totalseg_body", "body", "default", "TotalSegmentator v2 'body' task at 1.5 mm (its default): body trunk and "
     "extremities in CT, cleaned up as TotalSegmentator does (the trunk's largest component; extremities' "
     "components over 50 000 mm3)."),
    ("totalseg_body_6mm", "body", "fast", None),
    ("totalseg_body_mr", "body_mr", "default", "TotalSegmentator MRI 'body_mr' task at 1.5 mm (its default): body "
     "trunk and extremities in MRI (no clean-up: TotalSegmentator cleans up only its CT 'body' task)."),
    ("totalseg_body_mr_6mm", "body_mr", "fast", "TotalSegmentator MRI 'body_mr' task at 6 mm (its --fast): body "
     "trunk and extremities in MRI."),
    ("totalseg_vertebrae_body", "vertebrae_body", None, "TotalSegmentator 'vertebrae_body' task at 1.5 mm: "
     "vertebral bodies and intervertebral discs in CT."),
    ("totalseg_vertebrae_pp", "vertebrae_pp", None, "TotalSegmentator 'vertebrae_pp' task at 1.5 mm: vertebral "
     "bodies C1-L5 in CT, touching vertebrae relabelled and every vertebra grown by 3 mm as TotalSegmentator does."),
    ("totalseg_vertebrae_mr", "vertebrae_mr", None, None),
    ("totalseg_breasts", "breasts", None, "TotalSegmentator 'breasts' task at 1.5 mm: breasts in CT."),
    ("totalseg_trunk_cavities", "trunk_cavities", None, "TotalSegmentator 'trunk_cavities' task at 1.5 mm: "
     "mediastinum and other trunk cavities in CT."),
    ("totalseg_liver_vessels", "liver_vessels", None, "TotalSegmentator 'liver_vessels' task: liver vessels and "
     "tumours in CT, inside a crop around the liver found by its 6 mm 'total' model."),
    ("totalseg_kidney_cysts", "kidney_cysts", None, "TotalSegmentator 'kidney_cysts' task at 1.5 mm: kidney cysts in "
     "CT, inside a crop around kidneys, liver, spleen and colon found by its 6 mm 'total' model."),
    ("totalseg_hip_implant", "hip_implant", None, "TotalSegmentator 'hip_implant' task: hip implants in CT, inside a "
     "crop around femurs and hips found by its 6 mm 'total' model."),
    ("totalseg_cerebral_bleed", "cerebral_bleed", None, "TotalSegmentator 'cerebral_bleed' task: intracerebral "
     "haemorrhage in CT, inside a crop around the brain found by its 6 mm 'total' model."),
]


def _dataset_ids(config: dict) -> list[int]:
    ids = config["task_id"]
    return list(ids) if isinstance(ids, list) else [ids]


def _task_config(task: str, mode: str | None) -> dict:
    raw = TASK_CONFIGS[task]
    config = {"crop": None, "crop_addon": [3, 3, 3], "robust_crop": False, "model": "3d_fullres", "folds": [0]}
    config.update(raw["sub_modes"][mode] if mode else {k: v for k, v in raw.items() if k != "sub_modes"})
    return config


def _spacing(resample) -> list[float] | None:
    if resample is None:
        return None
    return [float(resample)] * 3 if isinstance(resample, (int, float)) else [float(r) for r in resample]


def _parts(task: str, ids: list[int]) -> list[dict]:
    tables = {"total": (maps.class_map_5_parts, maps.map_taskid_to_partname_ct),
              "total_v3": (maps.class_map_5_parts_total_v3, maps.map_taskid_to_partname_ct_v3),
              "total_mr": (maps.class_map_parts_mr, maps.map_taskid_to_partname_mr)}
    part_maps, part_names = tables[task]
    return [{"dataset": TASK_ID_WEIGHTS_CONFIGS[i]["foldername"],
             "labels": {str(k): v for k, v in part_maps[part_names[i]].items()}} for i in ids]


def _crop(task: str, config: dict) -> dict | None:
    """The crop TotalSegmentator makes before a task (python_api.py): structures of its 'total' model."""
    if not config.get("crop"):
        return None
    model = "totalseg_total_3mm" if config.get("robust_crop") else "totalseg_total_6mm"
    # python_api.py replaces the task's crop_addon by 20 mm whenever the crop comes from its `total` model
    margin = [20, 20, 20] if config.get("crop_model") is None else list(config.get("crop_addon") or [3] * 3)
    return {"model": model, "structures": list(config["crop"]), "margin_mm": margin}


def _roi_crop(task: str) -> dict | None:
    """--roi-subset's crop: TotalSegmentator's 6 mm model (3 mm for MRI) with 20 mm around the structures."""
    if not task.startswith("total"):
        return None
    return {"model": "totalseg_total_mr_3mm" if task.endswith("_mr") else "totalseg_total_6mm",
            "margin_mm": [20, 20, 20]}


def entry_for(name: str, task: str, mode: str | None, description: str | None, old: dict | None) -> dict | None:
    config = _task_config(task, mode)
    if config.get("commercial") or config.get("folds") is None:
        return None
    ids = _dataset_ids(config)
    releases = {TASK_ID_WEIGHTS_CONFIGS[i]["version"] for i in ids}
    folders = [TASK_ID_WEIGHTS_CONFIGS[i]["foldername"] for i in ids]
    mr = task.endswith("_mr") or task == "vertebrae_mr"
    labels = {"background": 0, **{v: int(k) for k, v in sorted(maps.class_map[task].items())}}
    entry = dict(old or {})
    entry.update({
        "name": name, "task": (old or {}).get("task") or description, "modality": "MRI" if mr else "CT",
        "channel_names": ["MRI" if mr else "CT"], "labels": labels, "configuration": config["model"],
        "trainer": config["trainer"], "plans": "nnUNetPlans", "folds": list(config["folds"]),
        "licence": "Apache-2.0", "citation": CITE_MR if mr else CITE_CT,
        "homepage": "https://github.com/wasserth/TotalSegmentator", "source": "download",
        "files": [{"url": f"{RELEASES}/{TASK_ID_WEIGHTS_CONFIGS[i]['version']}/{folder}.zip", "sha256": None,
                   "size": None} for i, folder in zip(ids, folders)],
    })
    conventions = {"style": "totalsegmentator", "release": sorted(releases)[0], "datasets": folders,
                   "spacing_mm": _spacing(config.get("resample")), "step": 0.8 if task in STEP_08_TASKS else 0.5,
                   "crop": _crop(task, config), "roi_crop": _roi_crop(task)}
    if task in CLEAN_UPS:
        conventions["clean_up"] = CLEAN_UPS[task]
    if f"{task}_auxiliary" in maps.class_map:  # labels its model predicts that TotalSegmentator clears
        conventions["auxiliary"] = {str(k): v for k, v in maps.class_map[f"{task}_auxiliary"].items()}
    entry["conventions"] = conventions
    if len(ids) > 1:
        entry["parts"] = _parts(task, ids)
    return entry


def main() -> int:
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    models = manifest["models"]
    index = {m["name"]: i for i, m in enumerate(models)}
    for name, task, mode, description in TASKS:
        old = models[index[name]] if name in index else None
        entry = entry_for(name, task, mode, description, old)
        if entry is None:
            print(f"left out {name}: TotalSegmentator's task {task} needs a licence key", file=sys.stderr)
            continue
        if old is None:
            models.append(entry)
        else:
            models[index[name]] = entry
    MANIFEST.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(TASKS)} TotalSegmentator entries to {MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
