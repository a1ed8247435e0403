#!/usr/bin/env bash
# Continue the miniature model (docs/miniature.md, takes four to six) from take three's weights:
#   base (self-reference) -> assemble -> reference -> view -> consistency.
# Usage: FROM=MODEL bash scripts/miniature_continue.sh OUT_DIR  (OUT_DIR/data and OUT_DIR/heldout: the synth and
# heldout stages of scripts/train_miniature.sh, same seeds; a new OUT_DIR, since the stage names are the same).
# Resumable as train_miniature.sh is. The shipped model (take six) is FROM=take three (train_miniature.sh's
# OUT/noise3d/model, or the weights shipped until 2026-12-05: `git archive 8a60dad src/diffportrait3d/weights/mini`)
# with this script's defaults, then `python scripts/package_miniature.py OUT_DIR/consistency/model`. Take five was NOISE_OFFSET=0; take four was
# NOISE_OFFSET=0 BASE_OPTIONS='{"reference_prob": 0.5}' BASE_FLOOR=0 REF_OPTIONS='{"same_view": 0.2}' BASE_STEPS=2000.
set -euo pipefail
OUT=${1:?usage: miniature_continue.sh OUT_DIR}
DP3D=${DP3D:-dp3d}
FROM=${FROM:?set FROM to the model folder to continue from (take three: train_miniature.sh OUT/noise3d/model)}
BASE_STEPS=${BASE_STEPS:-1500} REF_STEPS=${REF_STEPS:-1500} VIEW_STEPS=${VIEW_STEPS:-1000} CONS_STEPS=${CONS_STEPS:-300}
# base: half the samples read another view of their subject through the same UNet, half of those the
# target itself (copy pairs: the read path learns to match tokens); x0-space loss at high noise (snr_floor)
BASE_OPTIONS=${BASE_OPTIONS:-'{"reference_prob": 0.5, "same_view": 0.5}'} BASE_FLOOR=${BASE_FLOOR:-0.1}
REF_OPTIONS=${REF_OPTIONS:-'{"same_view": 0.3}'}
NOISE_OFFSET=${NOISE_OFFSET:-0.1}  # training/noising.py: > 0 teaches the backbone that the noise's mean is not the colour
source "$(dirname "$0")/recipe_stage.sh"  # stage NAME COMMAND...: run once, log time and final loss
assemble() {  # the shipped folder with the new base as backbone AND as the reference UNet's starting point
  rm -rf "$OUT/init.tmp" && cp -r "$FROM" "$OUT/init.tmp"
  rm -rf "$OUT/init.tmp/unet" "$OUT/init.tmp/reference_unet"
  cp -r "$OUT/base/model/unet" "$OUT/init.tmp/unet" && cp -r "$OUT/base/model/unet" "$OUT/init.tmp/reference_unet"
  mkdir -p "$OUT/init" && rm -rf "$OUT/init/model" && mv "$OUT/init.tmp" "$OUT/init/model"
}
common=(--data "$OUT/data" --resume --set sample_every=500 --set save_every=500 --set sample_steps=20
        --set val_data="$OUT/heldout" --set val_size=16)
diffusion=(--set snr_gamma=5 --set condition_source=folder --set noise_offset="$NOISE_OFFSET")
stage base "$DP3D" train --stage base "${common[@]}" "${diffusion[@]}" --model "$FROM" -o "$OUT/base" --max-steps "$BASE_STEPS" \
  --batch-size 16 --lr 1e-4 --set warmup_steps=50 --set ema_decay=0.999 --set val_every=100 --set snr_floor="$BASE_FLOOR" \
  --set options="$BASE_OPTIONS"
stage init assemble
stage reference "$DP3D" train --stage reference "${common[@]}" "${diffusion[@]}" --model "$OUT/init/model" -o "$OUT/reference" \
  --max-steps "$REF_STEPS" --batch-size 8 --lr 2e-4 --set warmup_steps=100 --set val_every=100 --set snr_floor=0.1 \
  --set options="$REF_OPTIONS"
stage view "$DP3D" train --stage view "${common[@]}" "${diffusion[@]}" --model "$OUT/reference/model" -o "$OUT/view" \
  --max-steps "$VIEW_STEPS" --batch-size 8 --lr 1e-4 --set warmup_steps=50 --set val_every=100 --set snr_floor=0.1
stage consistency "$DP3D" train --stage consistency "${common[@]}" "${diffusion[@]}" --model "$OUT/view/model" -o "$OUT/consistency" \
  --max-steps "$CONS_STEPS" --batch-size 1 --set views=8 --lr 1e-4 --set warmup_steps=20 --set val_every=100 --set val_size=4
echo "model folder: $OUT/consistency/model (python scripts/package_miniature.py $OUT/consistency/model)"
cat "$LOG"
