#!/usr/bin/env bash
# Stage 3 of the default model (v2) and the model card's ablation, from the v1 checkpoint:
#   bash scripts/default_model_v2.sh WORK_DIR V1_CHECKPOINT [DATA_DIR] [EPOCHS] [EPOCH_LENGTH]
# WORK_DIR holds the archives of scripts/train_default_model.sh (archive/{levir,dsifn,sztaki,oscd},
# landcover/{dubai,loveda,potsdam}). Adds the Sentinel-2 archive, pins the split to
# scripts/default_model_split.yaml, fine-tunes three variants from V1_CHECKPOINT with the same budget
# (+synthetic pairs; + invariance; + Sentinel-2 pairs) and evaluates v1 and the three on the held-out
# pairs and images (WORK_DIR/eval/<variant>/<dataset>/evaluation.json; table: scripts/default_model_table.py).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$1
V1=$2
DATA=${3:-../shared/data}
EPOCHS=${4:-4}
LENGTH=${5:-200}

python3 scripts/default_model_data.py "$DATA/oscd-s2" "$WORK" "$WORK"/archive/{levir,dsifn,sztaki,oscd} \
  "$WORK"/landcover/{dubai,loveda,potsdam}
RGB=("$WORK"/archive/{levir,dsifn,sztaki,oscd})
LANDCOVER=(--landcover "$WORK/landcover/dubai" --landcover "$WORK/landcover/loveda" --landcover "$WORK/landcover/potsdam")
COMMON=(--backbone tf_efficientnet_lite0 --lightweight --init-from "$V1" --tile-size 256 --batch-size 8
        --max-epochs "$EPOCHS" --epoch-length "$LENGTH" --val-every "$EPOCHS" --landcover-share 0.4
        --landcover-resolution 0.5 --synthetic-share 0.5 --lr 3e-4 --seed 0 --num-workers 1 --progress none)

declare -A ARCHIVES=([synthetic]="${RGB[*]}" [invariance]="${RGB[*]}" [s2]="${RGB[*]} $WORK/archive/s2")
declare -A INVARIANCE=([synthetic]=0 [invariance]=0.5 [s2]=0.5)
for variant in synthetic invariance s2; do
  rm -rf "$WORK/v2_$variant"
  # shellcheck disable=SC2086
  geocd train ${ARCHIVES[$variant]} "${LANDCOVER[@]}" -o "$WORK/v2_$variant" "${COMMON[@]}" \
    --invariance "${INVARIANCE[$variant]}"
done

VAL=$(python3 -c "import sys, yaml; print(','.join(yaml.safe_load(open(sys.argv[1]))['val']))" scripts/default_model_split.yaml)
declare -A MODEL=([v1]="$V1" [synthetic]="$WORK/v2_synthetic/last.safetensors"
                  [invariance]="$WORK/v2_invariance/last.safetensors" [s2]="$WORK/v2_s2/last.safetensors")
for variant in v1 synthetic invariance s2; do
  for name in levir dsifn sztaki oscd s2; do
    geocd evaluate "$WORK/archive/$name" --model "${MODEL[$variant]}" --pairs "$VAL" --num-workers 0 --overwrite \
      -o "$WORK/eval/$variant/$name"
  done
  for name in dubai loveda; do
    geocd evaluate "$WORK/landcover/$name" --model "${MODEL[$variant]}" --pairs "$VAL" --num-workers 0 --overwrite \
      -o "$WORK/eval/$variant/$name"
  done
done
