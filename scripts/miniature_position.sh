#!/usr/bin/env bash
# Take seven of the miniature model (docs/miniature.md): take six's modules continued with a learned
# same-position bias in the backbone's read attention (models/reference_position.py):
#   reference (+ position bias) -> view -> consistency.
# Usage: FROM=TAKE6 bash scripts/miniature_position.sh OUT_DIR  (TAKE6: miniature_continue.sh's OUT/consistency/model;
# OUT_DIR/data and OUT_DIR/heldout: the synth and heldout stages of scripts/train_miniature.sh, same seeds; a new
# OUT_DIR). Resumable as train_miniature.sh is. Then `python scripts/package_miniature.py OUT_DIR/consistency/model`.
set -euo pipefail
OUT=${1:?usage: miniature_position.sh OUT_DIR}
DP3D=${DP3D:-dp3d}
FROM=${FROM:?set FROM to the model folder to continue from (take six: miniature_continue.sh OUT/consistency/model)}
REF_STEPS=${REF_STEPS:-1500} VIEW_STEPS=${VIEW_STEPS:-1000} CONS_STEPS=${CONS_STEPS:-300}
# gain 3 at sigma 0.04: the best fixed bias on take six before any training (rec. SSIM 0.65 -> 0.75)
REF_OPTIONS=${REF_OPTIONS:-'{"same_view": 0.3, "position_gain": 3.0, "position_sigma": 0.04}'}
NOISE_OFFSET=${NOISE_OFFSET:-0.1}
source "$(dirname "$0")/recipe_stage.sh"
common=(--data "$OUT/data" --resume --set sample_every=500 --set save_every=500 --set sample_steps=20
        --set val_data="$OUT/heldout" --set val_size=16)
diffusion=(--set snr_gamma=5 --set condition_source=folder --set noise_offset="$NOISE_OFFSET" --set snr_floor=0.1)
stage reference "$DP3D" train --stage reference "${common[@]}" "${diffusion[@]}" --model "$FROM" -o "$OUT/reference" \
  --max-steps "$REF_STEPS" --batch-size 8 --lr 2e-4 --set warmup_steps=100 --set val_every=100 --set options="$REF_OPTIONS"
stage view "$DP3D" train --stage view "${common[@]}" "${diffusion[@]}" --model "$OUT/reference/model" -o "$OUT/view" \
  --max-steps "$VIEW_STEPS" --batch-size 8 --lr 1e-4 --set warmup_steps=50 --set val_every=100
stage consistency "$DP3D" train --stage consistency "${common[@]}" "${diffusion[@]}" --model "$OUT/view/model" -o "$OUT/consistency" \
  --max-steps "$CONS_STEPS" --batch-size 1 --set views=8 --lr 1e-4 --set warmup_steps=20 --set val_every=100 --set val_size=4
echo "model folder: $OUT/consistency/model (python scripts/package_miniature.py $OUT/consistency/model)"
cat "$LOG"
