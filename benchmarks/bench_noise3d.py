"""Speed of the 3D-aware noise model: ms per proxy at 64x64 and 256x256, training steps/s at 64x64.

    PYTHONPATH=src python benchmarks/bench_noise3d.py [--threads N] [--repeats R]

Random weights (speed does not depend on them). Proxies are timed as the pipeline asks for them:
one reference, a group of 8 target views (the reference is encoded once), and a single view.
Training: one optimiser step (forward, L2 + SSIM, backward, AdamW) on a batch of 8 pairs.
"""

import argparse
import resource
import time

import torch

from diffportrait3d.cameras import camera_labels
from diffportrait3d.models.noise3d import NoiseModel3D
from diffportrait3d.training.stages.noise3d_stage import Noise3DStage

CONFIGS = {
    "64": dict(image_size=64, base_channels=16, downsample=2, volume_depth=16, render_samples=16),  # the test fixture
    "256": dict(image_size=256, base_channels=16, downsample=3, volume_depth=32, render_samples=32),
}


def timed(fn, repeats):
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tl = torch.tensor(camera_labels(torch.linspace(-40, 40, 8).tolist(), [0.0] * 8), dtype=torch.float32)
    rl = torch.tensor(camera_labels([0.0], [0.0]), dtype=torch.float32)[0]
    print(f"threads {args.threads}")
    for name, cfg in CONFIGS.items():
        torch.manual_seed(0)
        m = NoiseModel3D(**cfg).eval()
        s = cfg["image_size"]
        ref = torch.rand(3, s, s) * 2 - 1
        n = sum(p.numel() for p in m.parameters())
        group = timed(lambda: m.proxies(ref, rl, tl), args.repeats)
        single = timed(lambda: m.proxies(ref, rl, tl[:1]), args.repeats)
        print(f"{name}x{name}: {n / 1e3:.0f}k params ({n * 4 / 2**20:.2f} MiB fp32) | "
              f"{group / 8 * 1e3:.1f} ms/proxy in a group of 8, {single * 1e3:.1f} ms for a single proxy")

    torch.manual_seed(0)
    m = NoiseModel3D(**CONFIGS["64"])
    imgs, labs = torch.rand(8, 3, 64, 64) * 2 - 1, tl
    batch = {"reference": imgs, "reference_label": rl.expand(8, -1), "target": imgs.flip(0), "target_label": labs}
    stage = Noise3DStage(m)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)

    def step():
        stage(batch)[0].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    dt = timed(step, 10 * args.repeats)
    print(f"training 64x64, batch 8: {1 / dt:.2f} steps/s ({dt * 1e3:.0f} ms/step)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
