#!/usr/bin/env bash
# A few-step student of a miniature model folder (issue 38): guidance distillation (the student learns the teacher's
# guided noise prediction; training/stages/distill.py), then `dp3d render --mode turbo` samples it with DDIM in 4 steps,
# one backbone batch each. OPTIONS='{"method": "consistency"}' LR=2e-5 EMA=0.999: the latent consistency student.
#   sweeps (references and carriers along yaw sweeps; the targets only set where x_t starts) -> distill
# Usage: bash scripts/distill_miniature.sh TEACHER OUT_DIR   (TEACHER: a model folder or mini; sizes from the environment)
# Resumable; wall times go to OUT_DIR/recipe_log.tsv, the validation curve to OUT_DIR/distill/logs/.
# The student is OUT_DIR/distill/model: the teacher's folder with turbo_unet/ and turbo_view_modules/ beside it.
set -euo pipefail
TEACHER=${1:?usage: distill_miniature.sh TEACHER OUT_DIR} OUT=${2:?usage: distill_miniature.sh TEACHER OUT_DIR}
DP3D=${DP3D:-dp3d}
SUBJECTS=${SUBJECTS:-400} DISTILL_STEPS=${DISTILL_STEPS:-2500} OPTIONS=${OPTIONS:-'{"method": "guidance"}'}  # stage options (JSON)
LR=${LR:-1e-4} EMA=${EMA:-0.995}
source "$(dirname "$0")/recipe_stage.sh"
stage sweeps "$DP3D" synth "$OUT/sweeps" --subjects "$SUBJECTS" --frames 1 --views 9 --res 64 --seed 0 --conditions 1 \
  --sweep 12 --workers 2
stage heldout_sweeps "$DP3D" synth "$OUT/heldout_sweeps" --subjects 24 --frames 1 --views 9 --res 64 --seed 1 \
  --conditions 1 --sweep 12
# groups of 8 neighbouring views (an orbit's), the teacher's guidance 3 folded in; the exported student is the EMA of
# the online one; validation: the stage's loss on held-out sweeps at fixed t and noise
stage distill "$DP3D" train --stage distill --model "$TEACHER" -o "$OUT/distill" --data "$OUT/sweeps" --resume \
  --max-steps "$DISTILL_STEPS" --batch-size 1 --set views=8 --lr "$LR" --set warmup_steps=50 --set ema_decay="$EMA" \
  --set condition_source=folder --set save_every=200 --set sample_every=0 \
  --set val_data="$OUT/heldout_sweeps" --set val_every=200 --set val_size=4 --set options="$OPTIONS"
echo "distilled model folder: $OUT/distill/model (dp3d render --model $OUT/distill/model --mode turbo ...)"
cat "$LOG"
