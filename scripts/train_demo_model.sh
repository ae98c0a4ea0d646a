#!/usr/bin/env bash
# Train the embedded demo model with MedSeg's own pipeline and put it into the package:
# 40 synthetic BraTS-like phantoms (+10 held out), a small 3d_fullres U-Net (8..32 features),
# 5-fold cross-validation, postprocessing chosen on the cross-validation, Dice on the held-out
# phantoms. About 45 minutes on 2 CPU cores. Usage: bash scripts/train_demo_model.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(realpath -m "${1:-demo_training}")
export nnUNet_raw=$WORK/raw nnUNet_preprocessed=$WORK/preprocessed nnUNet_results=$WORK/results
DATASET=$nnUNet_raw/Dataset990_BraTSPhantom
MODEL=$nnUNet_results/Dataset990_BraTSPhantom/nnUNetTrainer__nnUNetPlans__3d_fullres

[ -d "$DATASET" ] || medseg dataset phantom --id 990 --cases 40 --test-cases 10 --seed 0
medseg plan 990 --base-features 8 --max-features 32 -c 3d_fullres --quiet
medseg train 990 3d_fullres -f 0 1 2 3 4 --epochs 35 --iterations 25 --val-iterations 5 --save-every 10
medseg crossval "$MODEL"
medseg predict -m "$MODEL" -i "$DATASET/imagesTs" -o "$WORK/heldout" --postprocess
medseg evaluate "$WORK/heldout" "$DATASET/labelsTs" --dataset-json "$DATASET/dataset.json"
python scripts/embed_demo_model.py "$MODEL" "$DATASET" phantom_040
