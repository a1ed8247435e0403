"""Train the small 3D-aware noise model that tests/test_noise3d.py loads (tests/fixtures/noise3d/).

    PYTHONPATH=src python scripts/train_noise3d_fixture.py [-o tests/fixtures/noise3d] [--steps 1000]

Renders 48 procedural head identities x 6 random orbit cameras at 64x64 (about 45 s), then trains
NoiseModel3D(base_channels=16) with pixel L2 + SSIM for 1000 steps of 8 pairs (about 2 min on one
core). The test renders held-out identities 1000+ itself, so nothing here sees them. Writes the
diffusers folder (config.json + safetensors, ~0.8 MB) and training_log.json, atomically.
"""

import argparse
import json
import logging
import time

import torch

from diffportrait3d.atomic import atomic_path
from diffportrait3d.models.noise3d import NoiseModel3D
from diffportrait3d.training.noise3d import Noise3DLossConfig, train_noise3d
from diffportrait3d.training.noise3d_pairs import random_pairs, render_random_views

MODEL = dict(image_size=64, base_channels=16, downsample=2, volume_channels=16, volume_depth=16, conv3d_layers=2,
             render_samples=16)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", default="tests/fixtures/noise3d")
    ap.add_argument("--identities", type=int, default=48)
    ap.add_argument("--views", type=int, default=6)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weights", default=None, help="folder with a VGG16 file for the perceptual term (default: SSIM)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    images, labels = render_random_views(range(args.identities), args.views, 64, seed=args.seed)
    t_data = time.perf_counter() - t0
    logging.info("rendered %d views in %.0f s", images.shape[0] * images.shape[1], t_data)

    torch.manual_seed(args.seed)
    model = NoiseModel3D(**MODEL)
    history = train_noise3d(model, random_pairs(images, labels, args.batch_size, args.seed), args.steps, lr=args.lr,
                            loss_config=Noise3DLossConfig(weights_dir=args.weights), log_every=100)
    log = {"args": vars(args), "model": MODEL, "perceptual": model.config.training_loss,
           "render_seconds": round(t_data, 1), "train_seconds": round(history[-1]["seconds"], 1),
           "parameters": sum(p.numel() for p in model.parameters()),
           "steps": [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in h.items()}
                     for h in history if h["step"] % 10 == 0]}
    with atomic_path(args.out, suffix="") as tmp:
        model.save_pretrained(tmp)
        (tmp / "training_log.json").write_text(json.dumps(log, indent=1))
    logging.info("saved %s (%s, %.0f s training)", args.out, log["perceptual"], log["train_seconds"])


if __name__ == "__main__":
    main()
