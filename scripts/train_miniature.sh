#!/usr/bin/env bash
# The miniature DiffPortrait3D, end to end with the project's own commands (docs/miniature.md):
# synth -> vae -> base -> init -> reference -> view -> consistency -> noise3d -> package.
# Resumable: a finished stage is skipped, an interrupted one continues from its last checkpoint.
# Usage: bash scripts/train_miniature.sh OUT_DIR   (sizes below can be overridden from the environment)
# Each stage's wall time and final loss go to OUT_DIR/recipe_log.tsv.
set -euo pipefail
OUT=${1:?usage: train_miniature.sh OUT_DIR}
DP3D=${DP3D:-dp3d}
SUBJECTS=${SUBJECTS:-500} FRAMES=${FRAMES:-2} VIEWS=${VIEWS:-8}
VAE_STEPS=${VAE_STEPS:-3000} BASE_STEPS=${BASE_STEPS:-5000} REF_STEPS=${REF_STEPS:-2500}
VIEW_STEPS=${VIEW_STEPS:-2500} CONS_STEPS=${CONS_STEPS:-500} N3D_STEPS=${N3D_STEPS:-1000}
SAMPLE_EVERY=${SAMPLE_EVERY:-500}
source "$(dirname "$0")/recipe_stage.sh"  # stage NAME COMMAND...: run once, log time and final loss

# latents are encoded once per stage (cache_latents), condition images rendered once by synth
# (--conditions 1, read with condition_source=folder), Min-SNR-5 weighting on every diffusion stage; the vae
# stage stores per-channel latent mean/std (models/latent_scale.py) so every channel has unit variance
common=(--data "$OUT/data" --resume --set sample_every="$SAMPLE_EVERY" --set save_every=500 --set sample_steps=20)
# validation every 100 steps on the held-out set: fixed batch, t and noise, module on and off (logs/val.csv)
diffusion=(--set snr_gamma=5 --set condition_source=folder --set val_data="$OUT/heldout" --set val_every=100)
stage data "$DP3D" synth "$OUT/data" --subjects "$SUBJECTS" --frames "$FRAMES" --views "$VIEWS" --res 64 --seed 0 \
  --conditions 1 --workers 2
stage heldout "$DP3D" synth "$OUT/heldout" --subjects 24 --frames 1 --views "$VIEWS" --res 64 --seed 1
stage vae "$DP3D" train --stage vae "${common[@]}" -o "$OUT/vae" --max-steps "$VAE_STEPS" --batch-size 16 --lr 5e-4 \
  --set warmup_steps=50 --set options='{"preset": "mini"}'
stage base "$DP3D" train --stage base "${common[@]}" "${diffusion[@]}" --model "$OUT/vae/model" -o "$OUT/base" \
  --max-steps "$BASE_STEPS" --batch-size 16 --lr 3e-4 --set warmup_steps=100 --set ema_decay=0.999 --set options='{"preset": "mini"}'
stage init "$DP3D" init --base "$OUT/base/model" -o "$OUT/init/model"
stage reference "$DP3D" train --stage reference "${common[@]}" "${diffusion[@]}" --model "$OUT/init/model" -o "$OUT/reference" \
  --max-steps "$REF_STEPS" --batch-size 8 --lr 2e-4 --set warmup_steps=100
stage view "$DP3D" train --stage view "${common[@]}" "${diffusion[@]}" --model "$OUT/reference/model" -o "$OUT/view" \
  --max-steps "$VIEW_STEPS" --batch-size 8 --lr 2e-4 --set warmup_steps=100
stage consistency "$DP3D" train --stage consistency "${common[@]}" "${diffusion[@]}" --model "$OUT/view/model" -o "$OUT/consistency" \
  --max-steps "$CONS_STEPS" --batch-size 1 --set views="$VIEWS" --lr 1e-4 --set warmup_steps=20 --set val_size=4
stage noise3d "$DP3D" train --stage noise3d "${common[@]}" --model "$OUT/consistency/model" -o "$OUT/noise3d" \
  --max-steps "$N3D_STEPS" --batch-size 8 --lr 1e-3 --set warmup_steps=20
echo "model folder: $OUT/noise3d/model"
cat "$LOG"
