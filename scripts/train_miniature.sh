#!/usr/bin/env bash
# The miniature DiffPortrait3D from scratch, one command, every stage once with its final options (docs/miniature.md):
#   synth (+ sweeps) -> vae_crops -> vae -> base -> init -> view -> reference -> consistency -> noise3d
# then `python scripts/package_miniature.py OUT/noise3d/model` ships it.
# Resumable: a finished stage is skipped, an interrupted one continues from its last checkpoint.
# Usage: bash scripts/train_miniature.sh OUT_DIR   (sizes below can be overridden from the environment)
# Each stage's wall time and final loss go to OUT_DIR/recipe_log.tsv; validation curves to OUT_DIR/STAGE/logs/.
set -euo pipefail
OUT=${1:?usage: train_miniature.sh OUT_DIR}
DP3D=${DP3D:-dp3d}
SUBJECTS=${SUBJECTS:-500} FRAMES=${FRAMES:-2} VIEWS=${VIEWS:-8} HELDOUT=${HELDOUT:-24} SWEEPS=${SWEEPS:-400}
# PROCS training processes for base, view, reference and consistency (torchrun, DDP, one thread each; on GPUs one
# per GPU); batch sizes are global, so base, view and reference train the same steps on any PROCS dividing 8
# (tests/test_training_distributed.py); consistency takes one group per process and step
PROCS=${PROCS:-2}
# steps sized to 150 minutes on two cores: a step's time is its attention, already on the fused kernel (lab: recipe eight)
VAE_CROP_STEPS=${VAE_CROP_STEPS:-2000} VAE_STEPS=${VAE_STEPS:-500} BASE_STEPS=${BASE_STEPS:-4000} VIEW_STEPS=${VIEW_STEPS:-2000} REF_STEPS=${REF_STEPS:-3400}
CONS_GROUPS=${CONS_GROUPS:-3000} CONS_PATIENCE=${CONS_PATIENCE:-6} N3D_STEPS=${N3D_STEPS:-600}
case $PROCS in 1|2|4|8) ;; *) echo "PROCS must be 1, 2, 4 or 8 (it divides the batch sizes), got $PROCS" >&2; exit 2;; esac
source "$(dirname "$0")/recipe_stage.sh"  # stage NAME COMMAND...: run once, log time and final loss

# dp3d train on PROCS processes, --batch-size GLOBAL first: on 2 cores 2 processes of one thread make 1.13-1.34x
# the steps of one process of two threads (benchmarks/bench_recipe_processes.py)
train_on_procs() {
  local batch=$1; shift
  if [ "$PROCS" -eq 1 ]; then "$DP3D" train --batch-size "$batch" "$@"
  else OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node "$PROCS" -m diffportrait3d.cli.main train \
         --batch-size $((batch / PROCS)) "$@"; fi
}

# latents encoded once for base, view and reference (one VAE, one dataset: one file in OUT/latents); condition images
# rendered once by synth (--conditions 1, read with condition_source=folder) in clay (shape only: a carrier's colours
# cannot be misread for the camera); the vae stores per-channel latent mean/std so every channel has unit variance;
# sample grids every 1000 steps (each one a pause of ~10 s for the other process)
common=(--data "$OUT/data" --resume --set latent_cache="$OUT/latents" --set sample_every=1000 --set save_every=250 --set sample_steps=20)
# diffusion stages: Min-SNR-5, x0 loss below SNR 0.1, offset noise (the noise's mean is not the colour);
# validation every 100 steps on held-out heads: fixed batch, t and noise, module on and off (logs/val.csv);
# view, reference and noise3d hold their lr, then decay it to 0 over their last eighth (decay_steps; the base's EMA
# already averages)
diffusion=(--set snr_gamma=5 --set snr_floor=0.1 --set noise_offset=0.1 --set condition_source=folder
           --set val_data="$OUT/heldout" --set val_every=100 --set val_size=16)
stage data "$DP3D" synth "$OUT/data" --subjects "$SUBJECTS" --frames "$FRAMES" --views "$VIEWS" --res 64 --seed 0 \
  --conditions 1 --carrier-style clay --workers 2
stage heldout "$DP3D" synth "$OUT/heldout" --subjects "$HELDOUT" --frames 1 --views "$VIEWS" --res 64 --seed 1 --conditions 1 \
  --carrier-style clay --workers 2
# for the view modules: the same heads (and held-out ones) along yaw sweeps of 4-12 degree steps, as an orbit's
# neighbouring views; pixel-aligned attention across views finds little to share between independent cameras
stage sweeps "$DP3D" synth "$OUT/sweeps" --subjects "$SWEEPS" --frames 1 --views 9 --res 64 --seed 0 --conditions 1 \
  --carrier-style clay --sweep 12 --workers 2
stage heldout_sweeps "$DP3D" synth "$OUT/heldout_sweeps" --subjects "$HELDOUT" --frames 1 --views 9 --res 64 --seed 1 \
  --conditions 1 --carrier-style clay --sweep 12 --workers 2
# the VAE on 32x32 crops (a quarter of the pixels per step), then on whole renders from those weights, which also
# measure the latent scale: 740 s against 1688 s for 2500 whole steps, held-out PSNR 30.91 vs 30.77 dB
# (benchmarks/bench_vae_crops.py)
vae=(--batch-size 16 --lr 5e-4 --set warmup_steps=50)
stage vae_crops "$DP3D" train --stage vae "${common[@]}" "${vae[@]}" -o "$OUT/vae_crops" --max-steps "$VAE_CROP_STEPS" \
  --set options='{"preset": "mini", "crop": 32}'
stage vae "$DP3D" train --stage vae "${common[@]}" "${vae[@]}" --model "$OUT/vae_crops/model" -o "$OUT/vae" \
  --max-steps "$VAE_STEPS"
# the base also learns to read another view of its subject through its own self-attention (half the samples,
# half of those the target itself): the selective copying SD1.5 has and an unconditional tiny base lacks
stage base train_on_procs 16 --stage base "${common[@]}" "${diffusion[@]}" --model "$OUT/vae/model" -o "$OUT/base" \
  --max-steps "$BASE_STEPS" --lr 3e-4 --set warmup_steps=100 --set ema_decay=0.999 \
  --set options='{"preset": "mini", "reference_prob": 0.5, "same_view": 0.5}'
stage init "$DP3D" init --base "$OUT/base/model" -o "$OUT/init/model"
# the ControlNet first, reading through the reference as initialised (the base's copy, which already reads a
# reference), so that the reference stage can train with the target's camera known; the carriers are drawn in
# clay (saved in the model, so that sampling draws them so), their grey drawn anew per sample (condition_jitter);
# 2000 steps: run seven's 1000 missed the camera by 18 deg where run six's 2000 had read it (docs/lab, recipe seven)
stage view train_on_procs 8 --stage view "${common[@]}" "${diffusion[@]}" --model "$OUT/init/model" -o "$OUT/view" \
  --max-steps "$VIEW_STEPS" --set decay_steps=$((VIEW_STEPS / 8)) --lr 2e-4 --set warmup_steps=100 \
  --set options='{"condition_jitter": 1.0, "carrier_style": "clay"}'
# the reference UNet and the read path's position bias (one gain per head for the reference's camera, one for
# moved cameras blended over 10 degrees), with the frozen ControlNet giving the target's camera
stage reference train_on_procs 8 --stage reference "${common[@]}" "${diffusion[@]}" --model "$OUT/view/model" -o "$OUT/reference" \
  --max-steps "$REF_STEPS" --set decay_steps=$((REF_STEPS / 8)) --lr 2e-4 --set warmup_steps=100 \
  --set options='{"same_view": 0.3, "position_gain": 3.0, "position_sigma": 0.04, "position_moved_degrees": 10.0, "control": true}'
# the view modules, on the sweeps in yaw order (an orbit's groups), until their validation gap (off - on) on
# held-out sweeps has not grown for CONS_PATIENCE validations; at lr 1e-4 the gap stays flat and patience ends the
# stage with the modules untrained (docs/lab/2026-12-07-view-modules-lr.md)
stage consistency train_on_procs "$PROCS" --stage consistency "${common[@]}" "${diffusion[@]}" --model "$OUT/reference/model" \
  -o "$OUT/consistency" --data "$OUT/sweeps" --set val_data="$OUT/heldout_sweeps" --max-steps $((CONS_GROUPS / PROCS)) \
  --set views="$VIEWS" --lr 5e-4 --set warmup_steps=20 --set val_size=4 --set val_patience="$CONS_PATIENCE" \
  --set options='{"ordered": true}'
stage noise3d "$DP3D" train --stage noise3d "${common[@]}" --model "$OUT/consistency/model" -o "$OUT/noise3d" \
  --max-steps "$N3D_STEPS" --set decay_steps=$((N3D_STEPS / 8)) --batch-size 8 --lr 1e-3 --set warmup_steps=20
echo "model folder: $OUT/noise3d/model (python scripts/package_miniature.py $OUT/noise3d/model)"
cat "$LOG"
