#!/usr/bin/env bash
# Take ten of the miniature model (docs/miniature.md): take nine's reference UNet and position bias trained again
# with the view ControlNet on (frozen), so that a moved pair's target camera is known while the reference learns
# what to give it; the ControlNet and view modules stay take nine's.
# Usage: FROM=TAKE9 bash scripts/miniature_reference_control.sh OUT_DIR  (TAKE9: miniature_camera_gains.sh's
# OUT/reference/model; OUT_DIR/data and OUT_DIR/heldout: the synth and heldout stages of scripts/train_miniature.sh,
# same seeds; a new OUT_DIR). Resumable. Then `python scripts/package_miniature.py OUT_DIR/reference/model`.
set -euo pipefail
OUT=${1:?usage: miniature_reference_control.sh OUT_DIR}
DP3D=${DP3D:-dp3d}
FROM=${FROM:?set FROM to the model folder to continue from (take nine: miniature_camera_gains.sh OUT/reference/model)}
REF_STEPS=${REF_STEPS:-600}
REF_OPTIONS=${REF_OPTIONS:-'{"same_view": 0.3, "control": true}'}
source "$(dirname "$0")/recipe_stage.sh"
stage reference "$DP3D" train --stage reference --data "$OUT/data" --resume --set sample_every=300 --set save_every=300 \
  --set sample_steps=20 --set val_data="$OUT/heldout" --set val_size=16 --set snr_gamma=5 --set noise_offset=0.1 \
  --set snr_floor=0.1 --set condition_source=folder --model "$FROM" -o "$OUT/reference" --max-steps "$REF_STEPS" \
  --batch-size 8 --lr 1e-4 --set warmup_steps=50 --set val_every=100 --set options="$REF_OPTIONS"
echo "model folder: $OUT/reference/model (python scripts/package_miniature.py $OUT/reference/model)"
cat "$LOG"
