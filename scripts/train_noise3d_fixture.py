"""Train the small 3D-aware noise model that tests/test_noise3d.py loads (tests/fixtures/noise3d/).

    PYTHONPATH=src python scripts/train_noise3d_fixture.py [-o tests/fixtures/noise3d] [--data DIR] [--steps 1000]

Data: a `dp3d synth` dataset (48 subjects x 6 cameras at 64x64, written to a temporary folder unless
--data names one) read through `data.eg3d_dataset.PairDataset`, the same path `dp3d train --stage
noise3d` uses. Trains NoiseModel3D(base_channels=16) with pixel L2 + SSIM (or VGG16 with --weights)
for 1000 steps of 8 pairs: about 1 min of rendering and 2 min of training on one core. The test scores
held-out identity seeds 1000+, which this script checks the dataset does not contain. Writes the
diffusers folder (config.json + safetensors, ~0.8 MB) and training_log.json, atomically.
"""

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from diffportrait3d.atomic import atomic_path
from diffportrait3d.data.eg3d_dataset import PairDataset
from diffportrait3d.data.synth import SynthConfig, synth
from diffportrait3d.models.noise3d import NoiseModel3D
from diffportrait3d.training.noise3d import Noise3DLossConfig, train_noise3d

MODEL = dict(image_size=64, base_channels=16, downsample=2, volume_channels=16, volume_depth=16, conv3d_layers=2,
             render_samples=16)
HELD_OUT_SEEDS = range(1000, 1100)  # identity seeds the test renders; training must not see them


def batches(dataset: PairDataset, batch_size: int, seed: int):
    """Endless shuffled batches, a new epoch of pairs (new reference per target) each pass."""
    loader = DataLoader(dataset, batch_size, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(seed))
    epoch = 0
    while True:
        dataset.set_epoch(epoch)
        yield from loader
        epoch += 1


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
        dataset = PairDataset(root, res=64, condition_source="none", seed=args.seed)
        logging.info("%d training pairs per epoch from %s (%.0f s to render)", len(dataset), args.data or "synth", t_data)

        torch.manual_seed(args.seed)
        model = NoiseModel3D(**MODEL)
        history = train_noise3d(model, batches(dataset, args.batch_size, args.seed), args.steps, lr=args.lr,
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
