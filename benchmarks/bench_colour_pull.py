"""How the colour pull (noise_mean="colour_pull", pipeline/noise_mean.py) changes views by their angle to the reference.

    python benchmarks/bench_colour_pull.py [--model mini] [--seed 1] [--subjects 10] [--steps 20]

Each held-out subject (metrics/heldout.py) is rendered at all its cameras (its reference's first) in one group,
with noise_mean "remove" and "colour_pull" (same noise). Per angle between a view's and the reference's viewing
direction: the latent-mean error against the truth (per-channel spatial mean, the quantity the pull moves), face
and background colour error (0-255) and SSIM.
"""

import argparse

import numpy as np
import torch

from diffportrait3d.cameras.eg3d_torch import viewing_angle
from diffportrait3d.metrics.heldout import HeldoutSubject, border_colour, centre_colour, generate_views
from diffportrait3d.metrics.ssim import ssim
from diffportrait3d.pipeline.loading import load_pipeline

BINS = [(0, 1), (1, 20), (20, 40), (40, 60), (60, 90), (90, 180)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mini")
    ap.add_argument("--seed", type=int, default=1, help="held-out dataset seed (1: the recipe's validation heads)")
    ap.add_argument("--subjects", type=int, default=10)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    torch.set_num_threads(2)
    pipe = load_pipeline(a.model, device="cpu")
    pipe.set_progress_bar_config(disable=True)
    means = lambda x: pipe.encode(x).mean((2, 3))  # noqa: E731  (scaled posterior-mean latents)
    rows = []
    with torch.no_grad():
        for i in range(a.subjects):
            s = HeldoutSubject(a.seed, i)
            truth = means(s.images)
            labels = torch.as_tensor(s.labels, dtype=torch.float32)
            angle = viewing_angle(labels[:1][None], labels)[:, 0]
            per_mode = []
            for mode in ("remove", "colour_pull"):
                gen = generate_views(pipe, s, s.angles, a.steps, views="groups", noise_mean=mode)
                per_mode += [(means(gen) - truth).abs().mean(1), (centre_colour(gen) - centre_colour(s.images)).abs().mean(1),
                             (border_colour(gen) - border_colour(s.images)).abs().mean(1), ssim(gen, s.images)]
            rows += [[angle[k].item()] + [m[k].item() for m in per_mode] for k in range(len(angle))]
    rows = np.array(rows)
    print(f"\nheld-out seed {a.seed}, {a.subjects} subjects, all cameras in one group, {a.steps} steps; model {a.model}; "
          "remove -> reference\n")
    print("| angle to the reference | views | latent-mean error | face colour error | background colour error | SSIM |")
    print("|---|---|---|---|---|---|")
    for lo, hi in BINS:
        r = rows[(rows[:, 0] >= lo) & (rows[:, 0] < hi)]
        if len(r):
            m = r[:, 1:].mean(0)
            print(f"| {lo}-{hi}° | {len(r)} | {m[0]:.3f} -> {m[4]:.3f} | {m[1]:.1f} -> {m[5]:.1f} | {m[2]:.1f} -> {m[6]:.1f} | "
                  f"{m[3]:.3f} -> {m[7]:.3f} |")


if __name__ == "__main__":
    main()
