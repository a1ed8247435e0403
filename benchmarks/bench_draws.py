"""Reconstruction and draw spread of one or more models, side by side (docs/miniature.md's take tables).

    python benchmarks/bench_draws.py [NAME=]MODEL [[NAME=]MODEL ...] [--seed 1000] [--subjects 6] [--steps 20]
        [--noise-mean keep remove] [--condition-seed N] [--figure draws.png]

For each held-out subject (metrics/heldout.py, `HeldoutSubject(seed, i, views=8)`), 4 independent draws in
one group at the reference's own camera (reconstruction) and at the subject's second camera (novel):
SSIM to the truth (mean, worst), spread across draws, colour error of the central quarter (face) and of
the border (background), all 0-255. The same subjects, draws and seeds for every model and noise_mean.
--figure: for each model and noise_mean a block of rows (one per subject): the reference | its 4 draws at
its own camera, upscaled 2x, titled.
"""

import argparse
import time

import numpy as np
import torch
from PIL import Image, ImageDraw

from diffportrait3d.media import tensor_to_pil
from diffportrait3d.metrics.heldout import HeldoutSubject, draws_at
from diffportrait3d.pipeline.loading import load_pipeline
from diffportrait3d.pipeline.noise_mean import ALIASES, NOISE_MEANS


def measure(pipe, subjects, steps: int, noise_mean: str, condition_seed: int | None) -> dict:
    rec, nov = [], []
    for s in subjects:
        rec.append(draws_at(pipe, s, s.angles[0], steps, noise_mean=noise_mean, condition_seed=condition_seed))
        nov.append(draws_at(pipe, s, s.angles[1], steps, noise_mean=noise_mean, condition_seed=condition_seed))
    ssims = lambda rs: np.concatenate([r["ssim"] for r in rs])  # noqa: E731
    mean = lambda rs, k: float(np.mean([r[k] for r in rs]))  # noqa: E731
    images = [torch.cat([s.images[:1], r["images"]]) for s, r in zip(subjects, rec)]  # reference | draws, per subject
    return {"images": images, "rec": ssims(rec).mean(), "rec_worst": ssims(rec).min(), "spread": mean(rec, "spread"),
            "face": mean(rec, "face_error"), "bg": mean(rec, "background_error"),
            "novel": ssims(nov).mean(), "novel_worst": ssims(nov).min(), "novel_spread": mean(nov, "spread")}


def figure(blocks, scale: int = 2, gap: int = 12, title: int = 16) -> Image.Image:
    """Blocks side by side, each a title over rows of reference | draws (images in [-1, 1])."""
    tiles = [tensor_to_pil(torch.cat([torch.cat(list(row), dim=-1) for row in images], dim=-2)) for _, images in blocks]
    w, h = tiles[0].width * scale, tiles[0].height * scale
    sheet = Image.new("RGB", (len(blocks) * (w + gap) - gap, h + title), "white")
    draw = ImageDraw.Draw(sheet)
    for b, ((name, _), tile) in enumerate(zip(blocks, tiles)):
        x = b * (w + gap)
        draw.text((x + 2, 2), name, fill="black")
        sheet.paste(tile.resize((w, h), Image.NEAREST), (x, title))
    return sheet


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="model folders, hub ids or mini, each optionally NAME=MODEL")
    ap.add_argument("--seed", type=int, default=1000, help="held-out dataset seed (the miniature model trained on 0)")
    ap.add_argument("--subjects", type=int, default=6)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--noise-mean", nargs="+", default=["keep", "remove"], type=lambda v: ALIASES.get(v, v), choices=NOISE_MEANS)
    ap.add_argument("--condition-seed", type=int, default=None,
                    help="the camera carrier (bench_carriers.py; default: each model folder's, as dp3d render draws it)")
    ap.add_argument("--figure", default=None, help="write the reconstruction draws as a PNG here")
    a = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    subjects = [HeldoutSubject(a.seed, i, views=8) for i in range(a.subjects)]
    carrier = "the model's" if a.condition_seed is None else a.condition_seed
    print(f"held-out seed {a.seed}, {a.subjects} subjects, 4 draws per camera, {a.steps} steps, condition seed {carrier}\n")
    print("| model | noise_mean | rec. SSIM (worst) | spread at ref. camera | face / background colour error "
          "| novel SSIM (worst) | spread at novel camera |")
    print("|---|---|---|---|---|---|---|")
    blocks = []
    for arg in a.models:
        model, path = arg.split("=", 1) if "=" in arg else (arg, arg)
        pipe = load_pipeline(path, device="cpu")
        pipe.set_progress_bar_config(disable=True)
        for nm in a.noise_mean:
            m = measure(pipe, subjects, a.steps, nm, a.condition_seed)
            print(f"| {model} | {nm} | {m['rec']:.3f} ({m['rec_worst']:.3f}) | {m['spread']:.1f} | {m['face']:.1f} / "
                  f"{m['bg']:.1f} | {m['novel']:.3f} ({m['novel_worst']:.3f}) | {m['novel_spread']:.1f} |", flush=True)
            blocks.append((f"{model}, noise_mean={nm}: reference | 4 draws at its own camera", m["images"]))
    if a.figure:
        figure(blocks).save(a.figure)
        print(f"wrote {a.figure}")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
