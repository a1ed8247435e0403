"""The recipe's VAE stage on whole 64x64 renders vs on random crops (scripts/train_miniature.sh, the `crop` option).

    python benchmarks/bench_vae_crops.py --data OUT/data --heldout OUT/heldout [--steps 2500] [--crop 32]
        [--finish 500] [--whole DIR] [--out bench_vae_crops_out]

Trains `dp3d train --stage vae` with the recipe's settings (batch 16, lr 5e-4, warmup 50, preset mini, the same
seed): `steps` steps on whole images, against `steps - finish` steps on `crop` x `crop` crops followed by `finish`
steps on whole images from its weights (the recipe's vae_crops and vae stages; --finish 0: crops only). Each run
has its own folder under --out; a rerun resumes or reuses them. Both VAEs are measured on the held-out renders
(every view of OUT/heldout: heads no stage trains on): reconstruction PSNR and SSIM of encode (latent mean) ->
decode, and the training time (steps / the loop's steps/s, start-up left out). --whole DIR reuses a finished
whole-image VAE stage trained with the same settings (e.g. a recipe's OUT/vae) instead of training one.
Writes --out/vae_crops.md (the table, also printed) and vae_crops.png (held-out truth, whole, crops).
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

from diffportrait3d.media import grid, image_to_tensor, tensor_to_pil
from diffportrait3d.metrics.psnr import psnr
from diffportrait3d.metrics.ssim import ssim

VAE = ["--batch-size", "16", "--lr", "5e-4", "--set", "warmup_steps=50", "--set", "save_every=250",
       "--set", "sample_every=500"]  # the recipe's (its log every 10 steps)


def train(data: Path, out: Path, steps: int, crop: int, model: Path | None = None) -> None:
    if (out / "model" / "vae").is_dir():
        return
    options = '{"preset": "mini"' + (f', "crop": {crop}' if crop else "") + "}"
    cmd = [sys.executable, "-m", "diffportrait3d.cli.main", "train", "--stage", "vae", "--data", str(data), "-o", str(out),
           "--resume", "--max-steps", str(steps), *VAE, "--set", f"options={options}"] + (["--model", str(model)] if model else [])
    subprocess.run(cmd, check=True)


def seconds(stage: Path) -> float:
    """Training time from the loop's log (step, loss, lr, steps/s since its start): an uninterrupted run's."""
    step, *_, rate = [float(v) for v in (stage / "logs" / "loss.csv").read_text().strip().splitlines()[-1].split(",")]
    return step / rate


@torch.no_grad()
def reconstruct(vae_dir: Path, images: torch.Tensor) -> torch.Tensor:
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(vae_dir).eval()
    return torch.cat([vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1) for x in images.split(32)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--heldout", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--crop", type=int, default=32)
    ap.add_argument("--finish", type=int, default=500, help="whole-image steps after the crops")
    ap.add_argument("--whole", type=Path, help="a finished whole-image vae stage folder to reuse")
    ap.add_argument("--out", type=Path, default=Path("bench_vae_crops_out"))
    a = ap.parse_args()
    for name, path in (("--data", a.data), ("--heldout", a.heldout)):
        if not (path / "dataset.json").is_file():
            ap.error(f"{name} {path} is not a `dp3d synth` folder (no dataset.json)")
    if not 0 <= a.finish < a.steps:
        ap.error(f"--finish must be at least 0 and below --steps ({a.steps}), got {a.finish}")
    if a.crop < 1:
        ap.error(f"--crop must be a positive number of pixels, got {a.crop}")
    torch.set_num_threads(os.cpu_count() or 1)
    whole = a.whole or a.out / "whole"
    train(a.data, whole, a.steps, 0)
    crops = a.out / f"crop{a.crop}x{a.steps - a.finish}"
    train(a.data, crops, a.steps - a.finish, a.crop)
    name = f"crop {a.crop} x {a.steps - a.finish}" + (f" + whole x {a.finish}" if a.finish else "")
    runs = {"whole": [whole], name: [crops]}
    if a.finish:
        finished = a.out / f"{crops.name}+whole{a.finish}"
        train(a.data, finished, a.finish, 0, model=crops / "model")
        runs[name].append(finished)
    images = torch.stack([image_to_tensor(Image.open(p)) for p in sorted(a.heldout.glob("subject*/frame*/cam*.png"))])
    recs = {name: reconstruct(folders[-1] / "model" / "vae", images) for name, folders in runs.items()}
    rows = ["| VAE | training (s) | PSNR (dB) | worst PSNR | SSIM | worst SSIM |", "|---|---|---|---|---|---|"]
    time = {name: sum(seconds(f) for f in folders) for name, folders in runs.items()}
    for run, rec in recs.items():
        p, q = psnr(rec, images), ssim(rec, images)
        rows.append(f"| {run} | {time[run]:.0f} | {p.mean():.2f} | {p.min():.2f} | {q.mean():.4f} | {q.min():.4f} |")
    rows.append(f"\n{len(images)} held-out views ({a.heldout}); batch 16; time, crops / whole: {time[name] / time['whole']:.2f}x")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "vae_crops.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    pick = torch.linspace(0, len(images) - 1, 8).long()
    grid([[tensor_to_pil(x) for x in t[pick]] for t in (images, *recs.values())]).save(a.out / "vae_crops.png")


if __name__ == "__main__":
    main()
