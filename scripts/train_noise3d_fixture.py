"""Train the small 3D-aware noise model that tests/test_noise3d.py loads (tests/fixtures/noise3d/).

    PYTHONPATH=src python scripts/train_noise3d_fixture.py [-o tests/fixtures/noise3d] [--data DIR] [--steps 1000]

Data: a `dp3d synth` dataset (48 subjects x 6 cameras at 64x64, written to a temporary folder unless
--data names one). Trained by the product loop (training/loop.py, the `noise3d` stage, exactly what
`dp3d train --stage noise3d` runs): NoiseModel3D(base_channels=16) with pixel L2 + SSIM (or VGG16
with --weights), 1000 steps of 8 pairs, lr 2e-3 with 20 warm-up steps and cosine decay: about 1 min
of rendering and 2 min of training on one core. The test scores
held-out identity seeds 1000+, which this script checks the dataset does not contain. Writes the
diffusers folder (config.json + safetensors, ~0.8 MB) and training_log.json, atomically.
"""

import argparse
import csv
import json
import logging
import tempfile
import time
from pathlib import Path

import torch

from diffportrait3d.atomic import atomic_path
from diffportrait3d.data.synth import SynthConfig, synth
from diffportrait3d.training.config import TrainConfig
from diffportrait3d.training.loop import train
from diffportrait3d.training.stages import build_stage

MODEL = dict(base_channels=16, downsample=2, volume_channels=16, volume_depth=16, conv3d_layers=2, render_samples=16)
HELD_OUT_SEEDS = range(1000, 1100)  # identity seeds the test renders; training must not see them


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", default="tests/fixtures/noise3d")
    ap.add_argument("--data", default=None, help="an existing EG3D-layout dataset (default: synth one into a temp folder)")
    ap.add_argument("--subjects", type=int, default=48)
    ap.add_argument("--views", type=int, default=6)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weights", default=None, help="folder with a VGG16 file for the perceptual term (default: SSIM)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="synth processes")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmpdir:
        root = Path(args.data or tmpdir)
        t0 = time.perf_counter()
        if args.data is None:
            synth(root, SynthConfig(subjects=args.subjects, views=args.views, res=64, seed=args.seed, workers=args.workers),
                  progress=False)
        t_data = time.perf_counter() - t0
        if (root / "subjects.json").is_file():
            seeds = {s["identity_seed"] for s in json.loads((root / "subjects.json").read_text()).values()}
            if seeds & set(HELD_OUT_SEEDS):
                raise SystemExit(f"the dataset contains held-out identity seeds {sorted(seeds & set(HELD_OUT_SEEDS))}")
        run = Path(tmpdir) / "run"
        cfg = TrainConfig(stage="noise3d", data=str(root), output=str(run), max_steps=args.steps, batch_size=args.batch_size,
                          lr=args.lr, warmup_steps=20, lr_schedule="cosine", weight_decay=0.0, seed=args.seed, resolution=64,
                          save_every=args.steps, keep_last=1, sample_every=0, log_every=10, workers=0,
                          weights=args.weights or "", options={"model": MODEL}).validate()
        torch.manual_seed(args.seed)
        stage = build_stage(cfg)
        dataset = stage.dataset(cfg)
        logging.info("%d training pairs per epoch from %s (%.0f s to render)", len(dataset), args.data or "synth", t_data)
        t0 = time.perf_counter()
        train(cfg, stage, dataset, progress=False)
        t_train = time.perf_counter() - t0
        with open(run / "logs" / "loss.csv") as f:
            history = [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]
    model = stage.model
    model.register_to_config(training_loss=stage.perceptual.name)
    log = {"args": vars(args), "model": MODEL, "perceptual": model.config.training_loss,
           "render_seconds": round(t_data, 1), "train_seconds": round(t_train, 1),
           "parameters": sum(p.numel() for p in model.parameters()),
           "steps": [{k: round(v, 5) for k, v in h.items()} for h in history]}
    with atomic_path(args.out, suffix="") as tmp:
        model.save_pretrained(tmp)
        (tmp / "training_log.json").write_text(json.dumps(log, indent=1))
    logging.info("saved %s (%s, %.0f s training)", args.out, log["perceptual"], log["train_seconds"])


if __name__ == "__main__":
    main()
