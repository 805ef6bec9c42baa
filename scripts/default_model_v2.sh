#!/usr/bin/env bash
# Stage 3 of the default model (v2) and the model card's ablation, from the v1 checkpoint:
#   [BATCH=8 WORKERS=1] bash scripts/default_model_v2.sh WORK_DIR V1_CHECKPOINT [EPOCHS] [EPOCH_LENGTH]
# WORK_DIR holds the archives of scripts/train_default_model.sh (archive/{levir,dsifn,sztaki,oscd,s2},
# landcover/{dubai,loveda,potsdam,s2}, split pinned to scripts/default_model_split.yaml). Fine-tunes three
# variants from V1_CHECKPOINT with the same budget (+synthetic pairs; + invariance; + Sentinel-2 pairs),
# continues the last one for twice that budget (v2_final), trains single heads of v1 on its frozen encoder
# (land-cover head, with and without Sentinel-2 land cover; change head), and evaluates v1 and the
# seven on the held-out pairs and images (WORK_DIR/eval/<variant>/<dataset>/evaluation.json).
# The defaults fit a 2-core CPU (about 35 min for the four fine-tunes, 40 min for the three head-only runs);
# on a CUDA GPU Lightning trains with mixed precision: give a bigger BATCH, WORKERS and EPOCHS/EPOCH_LENGTH there.
# Later flags override COMMON's.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$1
V1=$2
EPOCHS=${3:-4}
LENGTH=${4:-200}

RGB=("$WORK"/archive/{levir,dsifn,sztaki,oscd})
LANDCOVER=(--landcover "$WORK/landcover/dubai" --landcover "$WORK/landcover/loveda" --landcover "$WORK/landcover/potsdam")
COMMON=(--backbone tf_efficientnet_lite0 --lightweight --tile-size 256 --batch-size "${BATCH:-8}" --epoch-length "$LENGTH"
        --landcover-share 0.4 --landcover-resolution 0.5 --synthetic-share 0.5 --lr 3e-4 --seed 0
        --num-workers "${WORKERS:-1}" --progress none)

declare -A ARCHIVES=([synthetic]="${RGB[*]}" [invariance]="${RGB[*]}" [s2]="${RGB[*]} $WORK/archive/s2")
declare -A INVARIANCE=([synthetic]=0 [invariance]=0.5 [s2]=0.5)
for variant in synthetic invariance s2; do
  rm -rf "$WORK/v2_$variant"
  # shellcheck disable=SC2086
  geocd train ${ARCHIVES[$variant]} "${LANDCOVER[@]}" -o "$WORK/v2_$variant" --init-from "$V1" "${COMMON[@]}" \
    --max-epochs "$EPOCHS" --val-every "$EPOCHS" --invariance "${INVARIANCE[$variant]}"
done
rm -rf "$WORK/v2_final"
# shellcheck disable=SC2086
geocd train ${ARCHIVES[s2]} "${LANDCOVER[@]}" -o "$WORK/v2_final" --init-from "$WORK/v2_s2/last.safetensors" \
  "${COMMON[@]}" --max-epochs $((2 * EPOCHS)) --val-every $((2 * EPOCHS)) --invariance 0.5

# Head-only variants from v1 (--freeze, 6 epochs, best validated epoch): the land-cover head alone (v1's change
# maps kept bit for bit; OSCD is the change archive geocd train needs, its change term trains nothing), the
# same with the Sentinel-2 dates as land-cover images labelled from their NIR band, and the change head alone.
LANDCOVER_HEAD=(--init-from "$V1" --freeze encoder --freeze change --landcover-share 0.9 --max-epochs 6 --val-every 2 --invariance 0.5)
rm -rf "$WORK/v2_landcover_head" "$WORK/v2_landcover_head_s2" "$WORK/v2_change_head"
geocd train "$WORK/archive/oscd" "${LANDCOVER[@]}" -o "$WORK/v2_landcover_head" "${COMMON[@]}" "${LANDCOVER_HEAD[@]}"
geocd train "$WORK/archive/oscd" "${LANDCOVER[@]}" --landcover "$WORK/landcover/s2" -o "$WORK/v2_landcover_head_s2" \
  "${COMMON[@]}" "${LANDCOVER_HEAD[@]}"
# shellcheck disable=SC2086
geocd train ${ARCHIVES[s2]} "${LANDCOVER[@]}" -o "$WORK/v2_change_head" "${COMMON[@]}" --init-from "$V1" --freeze encoder \
  --freeze semantic --landcover-share 0.2 --max-epochs 6 --val-every 2 --invariance 0.5

VAL=$(python3 -c "import sys, yaml; print(','.join(yaml.safe_load(open(sys.argv[1]))['val']))" scripts/default_model_split.yaml)
declare -A MODEL=([v1]="$V1" [synthetic]="$WORK/v2_synthetic/last.safetensors"
                  [invariance]="$WORK/v2_invariance/last.safetensors" [s2]="$WORK/v2_s2/last.safetensors"
                  [final]="$WORK/v2_final/last.safetensors" [landcover_head]="$WORK/v2_landcover_head/best.safetensors"
                  [landcover_head_s2]="$WORK/v2_landcover_head_s2/best.safetensors"
                  [change_head]="$WORK/v2_change_head/best.safetensors")
for variant in v1 synthetic invariance s2 final landcover_head landcover_head_s2 change_head; do
  for name in levir dsifn sztaki oscd s2; do
    geocd evaluate "$WORK/archive/$name" --model "${MODEL[$variant]}" --pairs "$VAL" --num-workers 0 --overwrite \
      -o "$WORK/eval/$variant/$name"
  done
  for name in dubai loveda; do
    geocd evaluate "$WORK/landcover/$name" --model "${MODEL[$variant]}" --pairs "$VAL" --num-workers 0 --overwrite \
      -o "$WORK/eval/$variant/$name"
  done
done
