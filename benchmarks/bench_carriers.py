"""Which identity should carry the cameras? The view ControlNet reads the target camera from a render of a
proxy identity (`--condition-seed`); this measures, per carrier, how well the generated views land.

    python benchmarks/bench_carriers.py [--model mini] [--seed 1] [--subjects 6] [--carriers 0-11]
        [--steps 20] [--noise-seeds 0,1] [--hair R,G,B] [--carrier-style clay] [--figure docs/carriers.png]

Held-out heads of seed SEED (default 1, the recipe's validation split: choose on it, report on others)
are rendered from their first camera to their five others, as bench_miniature_quality does, with each
carrier in turn (same noise draws): SSIM to the truth (mean, worst) and yaw error by render-and-compare.
The figure shows each carrier at 0 and 45 degrees beside one generated view. --hair R,G,B (0-1) gives every
carrier that hair colour, nothing else changed: which part of a carrier the ControlNet reads its camera from.
Carriers are drawn in the model's carrier style (model_index.json's carrier_style) unless --carrier-style says.
"""

import argparse
import time
from dataclasses import replace

import numpy as np
import torch
from PIL import Image, ImageDraw
from tqdm import tqdm

from diffportrait3d.cameras import camera_labels
from diffportrait3d.cli.main import OneLineParser
from diffportrait3d.conditions.sources import model_carrier_style, model_condition_seed, render_carrier
from diffportrait3d.head import Identity
from diffportrait3d.head.shading import STYLES
from diffportrait3d.metrics.heldout import HeldoutSubject, generate_views
from diffportrait3d.metrics.render_compare import render_compare_pose
from diffportrait3d.metrics.ssim import ssim
from diffportrait3d.pipeline.loading import load_pipeline


def seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = map(int, text.split("-"))
        return list(range(lo, hi + 1))
    return [int(c) for c in text.split(",")]


def carrier_images(labels, size: int, seed: int, hair, style: str) -> list[Image.Image]:
    """The carrier of condition seed `seed` (as `dp3d render` draws it), its hair colour replaced when `hair` is given."""
    identity = Identity.sample(seed)
    return render_carrier(identity if hair is None else replace(identity, hair_colour=hair), labels, size, style)


def colour(text: str) -> tuple:
    rgb = tuple(float(v) for v in text.split(","))
    if len(rgb) != 3 or not all(0 <= v <= 1 for v in rgb):
        raise argparse.ArgumentTypeError(f"--hair {text}: give three numbers from 0 to 1, e.g. 0.23,0.15,0.10")
    return rgb


def main():
    ap = OneLineParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mini")
    ap.add_argument("--seed", type=int, default=1, help="held-out dataset seed (1: the recipe's validation heads)")
    ap.add_argument("--subjects", type=int, default=6)
    ap.add_argument("--carriers", default="0-11", help="condition seeds: A-B or a comma list")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--noise-seeds", default="0,1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hair", type=colour, default=None, help="R,G,B in 0-1: every carrier's hair colour")
    ap.add_argument("--carrier-style", choices=STYLES, default=None, help="default: the model's")
    ap.add_argument("--figure", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    pipe = load_pipeline(a.model, device="cpu")
    pipe.set_progress_bar_config(disable=True)
    style = a.carrier_style or model_carrier_style(pipe)
    subjects = [HeldoutSubject(a.seed, i) for i in range(a.subjects)]
    carriers, noise = seeds(a.carriers), seeds(a.noise_seeds)
    rows, tiles = {}, []
    for c in tqdm(carriers, desc="carriers"):
        ssims, yaws = [], []
        for s in subjects:
            for n in noise:
                labels = camera_labels(s.angles[1:, 0], s.angles[1:, 1])
                gen = generate_views(pipe, s, s.angles[1:], a.steps, seed=n, views="groups",
                                     conditions=carrier_images(labels, s.res, c, a.hair, style))
                ssims += ssim(gen, s.images[1:]).tolist()
                est = [render_compare_pose(g, s.render, yaws=range(-90, 91, 15), pitches=(-15, 0, 15), refine_to=2.0)[0] for g in gen]
                yaws += np.abs(np.array(est) - s.angles[1:, 0]).tolist()
                if s is subjects[0] and n == noise[0]:
                    first = gen[0]
        rows[c] = (np.mean(ssims), np.min(ssims), np.mean(yaws), np.median(yaws))
        carrier = [np.asarray(im) for im in carrier_images(camera_labels([0, 45], [0, 0]), pipe.image_size, c, a.hair, style)]
        tiles.append((c, np.concatenate(carrier + [((first.permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()], 1)))
    hair = (f", every carrier's hair {a.hair}" if a.hair else "") + f", carriers drawn {style}"
    print(f"\nheld-out seed {a.seed}, {a.subjects} subjects x 5 targets x {len(noise)} noise draws, {a.steps} steps; model {a.model}{hair}\n")
    print("| carrier (condition seed) | SSIM mean | SSIM worst | yaw error mean (deg) | yaw error median |")
    print("|---|---|---|---|---|")
    for c, (m, w, y, ym) in rows.items():
        mark = " (the model's default)" if c == model_condition_seed(pipe) else ""
        print(f"| {c}{mark} | {m:.3f} | {w:.3f} | {y:.1f} | {ym:.1f} |")
    if a.figure:
        scale = 3
        sheet = Image.fromarray(np.concatenate([t for _, t in tiles], 0))
        sheet = sheet.resize((sheet.width * scale, sheet.height * scale), Image.NEAREST)
        draw, h = ImageDraw.Draw(sheet), tiles[0][1].shape[0] * scale
        for k, (c, _) in enumerate(tiles):
            draw.text((4, k * h + 4), f"seed {c}: yaw err {rows[c][2]:.1f}", fill=(255, 255, 255))
        sheet.save(a.figure)
        print(f"\nwrote {a.figure} (each row: the carrier at yaw 0 and 45, a generated view of the first subject)")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
