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

# Single-date land-cover maps for the land-cover heads (resolution of Dubai not stated: about 1 m).
declare -A LC_RESOLUTION=([dubai]=1.0 [loveda]=0.3 [potsdam]=0.05)
landcover=()
for name in dubai loveda potsdam; do
  geocd import-landcover "$DATA/landcover/$name" "$WORK/landcover/$name" --mapping "$name" \
    --resolution "${LC_RESOLUTION[$name]}" --dataset "$name" --overwrite
  landcover+=(--landcover "$WORK/landcover/$name")
done

rm -rf "$WORK/run"
geocd train "${archives[@]}" "${landcover[@]}" -o "$WORK/run" --backbone tf_efficientnet_lite0 --pretrained --lightweight \
  --tile-size 256 --batch-size 8 --max-epochs "$EPOCHS" --epoch-length 160 --landcover-share 0.5 \
  --landcover-resolution 0.5 --val-fraction 0.2 --seed 0 --num-workers 0

# Model-card figures: the best checkpoint on the validation pairs, without and with TTA.
VAL=$(python3 -c "import json, sys; print(','.join(json.load(open(sys.argv[1]))['val']))" "$WORK/run/split.json")
for name in levir dsifn sztaki oscd; do
  geocd evaluate "$WORK/archive/$name" --model "$WORK/run/best.safetensors" --pairs "$VAL" --num-workers 0 -o "$WORK/eval/$name"
  geocd evaluate "$WORK/archive/$name" --model "$WORK/run/best.safetensors" --pairs "$VAL" --num-workers 0 --tta \
    -o "$WORK/eval_tta/$name"
done

python3 scripts/export_default_model.py "$WORK/run/best.safetensors" geocd/models/default/geocd-default.safetensors "$WORK"
