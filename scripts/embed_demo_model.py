"""Copy a model trained by `medseg train` into the package as the embedded `example` model.

Used by scripts/train_demo_model.sh. Checkpoints lose their optimizer state (not needed for
inference, half the size); every file's size and SHA-256 go into models_manifest.json, which
MedSeg checks before it uses the embedded model. One held-out case becomes the demo case.

    python scripts/embed_demo_model.py MODEL_FOLDER DATASET_FOLDER CASE_ID
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "src" / "data"
MODEL_FILES = ("dataset.json", "plans.json", "dataset_fingerprint.json")
INFERENCE_KEYS = ("network_weights", "init_args", "trainer_name", "inference_allowed_mirroring_axes", "current_epoch")


def strip_checkpoint(source: Path, target: Path) -> None:
    import torch

    from chimerax.medseg.models.checkpoint import load_checkpoint
    data = load_checkpoint(source)
    slim = {k: data[k] for k in INFERENCE_KEYS if k in data}
    slim["medseg"] = {k: v for k, v in data.get("medseg", {}).items() if k != "log_records"}
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(slim, target)


def file_records(folder: Path) -> list[dict]:
    return [{"path": p.relative_to(folder).as_posix(), "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
             "size": p.stat().st_size} for p in sorted(folder.rglob("*")) if p.is_file()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="trained model folder (<Trainer>__<Plans>__<configuration>)")
    parser.add_argument("dataset", type=Path, help="raw dataset folder with imagesTs/labelsTs")
    parser.add_argument("case", help="held-out case id to embed as the demo case (e.g. phantom_040)")
    args = parser.parse_args()

    model_out, case_out = DATA / "example_model", DATA / "example_case"
    for folder in (model_out, case_out):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    for name in MODEL_FILES:
        shutil.copy(args.model / name, model_out / name)
    for chosen in sorted(args.model.glob("crossval_results_folds_*/postprocessing.json"))[-1:]:
        shutil.copy(chosen, model_out / "postprocessing.json")  # chosen on the cross-validation
    folds = sorted(p for p in args.model.glob("fold_*") if (p / "checkpoint_final.pth").is_file())
    for fold in folds:
        strip_checkpoint(fold / "checkpoint_final.pth", model_out / fold.name / "checkpoint_final.pth")
    for image in sorted((args.dataset / "imagesTs").glob(f"{args.case}_[0-9][0-9][0-9][0-9].nii.gz")):
        shutil.copy(image, case_out / image.name)
    shutil.copy(args.dataset / "labelsTs" / f"{args.case}.nii.gz", case_out / "ground_truth.nii.gz")

    manifest_path = REPO / "src" / "models_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    entry = next(m for m in manifest["models"] if m["name"] == "example")
    entry["folds"] = [int(f.name.split("_")[1]) for f in folds]
    entry["files"] = file_records(model_out)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"embedded {len(folds)} fold(s), {sum(f['size'] for f in entry['files']) / 1e6:.1f} MB; "
          f"demo case {args.case}; manifest updated")


if __name__ == "__main__":
    main()
