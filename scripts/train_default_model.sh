#!/usr/bin/env bash
# Reproduce geocd's embedded default model from the shared real imagery on a clean checkout:
#   bash scripts/train_default_model.sh [DATA_DIR] [WORK_DIR] [EPOCHS]
# For the random-init comparison of the model card, run the same geocd train line with --no-pretrained.
# DATA_DIR holds levir/, dsifn/, sztaki/, oscd/ (A/, B/, label/ each); nothing from it is copied
# into the repository. The result is written to geocd/models/default/geocd-default.safetensors.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
WORK=${2:-build/default-model}
EPOCHS=${3:-10}

# Ground resolution of each dataset in metres (the chips carry no georeferencing).
declare -A RESOLUTION=([levir]=0.5 [dsifn]=2.0 [sztaki]=1.5 [oscd]=10.0)
archives=()
for name in levir dsifn sztaki oscd; do
  geocd import-chips "$DATA/$name" "$WORK/archive/$name" --resolution "${RESOLUTION[$name]}" --dataset "$name" --overwrite
  archives+=("$WORK/archive/$name")
done

rm -rf "$WORK/run" "$WORK/run_lc"
# Stage 1: the change head (and backbone) on the change pairs, from ImageNet weights.
geocd train "${archives[@]}" -o "$WORK/run" --backbone tf_efficientnet_lite0 --pretrained --lightweight \
  --tile-size 256 --batch-size 8 --max-epochs "$EPOCHS" --val-fraction 0.2 --seed 0 --num-workers 0

# Stage 2: add single-date land-cover maps (Dubai's resolution is not stated: about 1 m) and fine-tune
# from stage 1; training both from ImageNet weights at once left the change head untrained on CPU budgets.
declare -A LC_RESOLUTION=([dubai]=1.0 [loveda]=0.3 [potsdam]=0.05)
landcover=()
for name in dubai loveda potsdam; do
  geocd import-landcover "$DATA/landcover/$name" "$WORK/landcover/$name" --mapping "$name" \
    --resolution "${LC_RESOLUTION[$name]}" --dataset "$name" --overwrite
  landcover+=(--landcover "$WORK/landcover/$name")
done
geocd train "${archives[@]}" "${landcover[@]}" -o "$WORK/run_lc" --backbone tf_efficientnet_lite0 --lightweight \
  --init-from "$WORK/run/best.safetensors" --tile-size 256 --batch-size 8 --max-epochs 6 --epoch-length 160 \
  --landcover-share 0.3 --landcover-resolution 0.5 --lr 3e-4 --val-fraction 0.2 --seed 0 --num-workers 0

# Model-card figures: both stages on the validation pairs (change, without and with TTA) and images (land cover).
BEST="$WORK/run_lc/best.safetensors"
VAL=$(python3 -c "import json, sys; print(','.join(json.load(open(sys.argv[1]))['val']))" "$WORK/run_lc/split.json")
for name in levir dsifn sztaki oscd; do
  geocd evaluate "$WORK/archive/$name" --model "$WORK/run/best.safetensors" --pairs "$VAL" --num-workers 0 --overwrite -o "$WORK/eval_change_only/$name"
  geocd evaluate "$WORK/archive/$name" --model "$BEST" --pairs "$VAL" --num-workers 0 --overwrite -o "$WORK/eval/$name"
  geocd evaluate "$WORK/archive/$name" --model "$BEST" --pairs "$VAL" --num-workers 0 --overwrite --tta -o "$WORK/eval_tta/$name"
done
for name in dubai loveda; do
  geocd evaluate "$WORK/landcover/$name" --model "$BEST" --pairs "$VAL" --num-workers 0 --overwrite -o "$WORK/eval_landcover/$name"
done

python3 scripts/export_default_model.py "$BEST" geocd/models/default/geocd-default.safetensors "$WORK"
