#!/usr/bin/env bash
# Take nine of the miniature model (docs/miniature.md): take seven with its read path's position bias centred
# through the camera (models/proxy_warp.py) and given a second gain per head for moved cameras; only the
# bias trains (the reference UNet, ControlNet and view modules stay take seven's).
# Usage: FROM=TAKE7 bash scripts/miniature_camera_gains.sh OUT_DIR  (TAKE7: miniature_position.sh's
# OUT/consistency/model; OUT_DIR/data and OUT_DIR/heldout: the synth and heldout stages of scripts/train_miniature.sh,
# same seeds; a new OUT_DIR). Resumable. Then `python scripts/package_miniature.py OUT_DIR/reference/model`.
set -euo pipefail
OUT=${1:?usage: miniature_camera_gains.sh OUT_DIR}
DP3D=${DP3D:-dp3d}
FROM=${FROM:?set FROM to the model folder to continue from (take seven: miniature_position.sh OUT/consistency/model)}
REF_STEPS=${REF_STEPS:-800}
# moved cameras blend over 10 degrees: the same-view pairs (30%) train the same-camera gains, the rest the moved ones
REF_OPTIONS=${REF_OPTIONS:-'{"same_view": 0.3, "position_moved_degrees": 10.0, "train_unet": false}'}
source "$(dirname "$0")/recipe_stage.sh"
stage reference "$DP3D" train --stage reference --data "$OUT/data" --resume --set sample_every=400 --set save_every=400 \
  --set sample_steps=20 --set val_data="$OUT/heldout" --set val_size=16 --set snr_gamma=5 --set noise_offset=0.1 \
  --set snr_floor=0.1 --model "$FROM" -o "$OUT/reference" --max-steps "$REF_STEPS" --batch-size 8 --lr 2e-4 \
  --set warmup_steps=50 --set val_every=100 --set options="$REF_OPTIONS"
echo "model folder: $OUT/reference/model (python scripts/package_miniature.py $OUT/reference/model)"
cat "$LOG"
