#!/usr/bin/env bash
# Reproduces the bundled demo model (yolostream/assets/demo.safetensors) from nothing: the scene is
# generated, the model trained from scratch with `yolostream train` (no pretrained weights, no Ultralytics
# code), validated, and written as fp16 safetensors. About 20-25 minutes on a quiet 2-core CPU.
#   bash examples/train_demo_model.sh [OUT]      # default runs/demo-model
set -euo pipefail
OUT="${1:-runs/demo-model}"
YS="${YOLOSTREAM:-yolostream}"

# 500 training + 100 validation stills of the conveyor scene (seed 0), 640x384.
"$YS" demo "$OUT/scene" --dataset-only --train 500 --val 100 --seed 0

# yolo11 at yolostream's tiny scale "t" (0.8 M parameters), 320 px, 30 epochs. Every optimiser step on a
# batch of 16 (--nbs 16): a CPU run has few steps, so none are spent on accumulation; AdamW at 2e-3
# with one warm-up epoch; mosaic off for the last 5 epochs.
"$YS" train "$OUT/scene/dataset/data.yaml" --model yolo11t --epochs 30 --imgsz 320 --batch 16 --nbs 16 \
  --optimizer adamw --lr0 0.002 --warmup-epochs 1 --close-mosaic 5 --val-every 5 --workers 1 --seed 0 \
  --cache --out "$OUT/train"

# The shipped file: the best EMA weights, stored as fp16 (1.6 MB).
python -m yolostream.train.release "$OUT/train/best.safetensors" "$OUT/demo.safetensors"
"$YS" val "$OUT/demo.safetensors" "$OUT/scene/dataset/data.yaml" --imgsz 320
echo "copy $OUT/demo.safetensors to yolostream/assets/demo.safetensors to ship it"
