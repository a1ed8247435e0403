"""Per-step cost of the fast path vs the authors' per-view recomputation, and one full-size step.

    python benchmarks/bench_pipeline.py [--full] [--threads N]

Prints, for the tiny preset and one group of 8 views: seconds per denoising step for each path,
their ratio, and the network passes per step (calls x batch rows) of each network. With --full:
one step of an SD1.5-size model (random weights) at 256x256 for 2 views, wall time and peak RSS.
"""

import argparse
import resource
import time
from collections import Counter

import torch

from diffportrait3d.models.denoiser import guided_eps, shared_reference_bank
from diffportrait3d.pipeline.build import components_from_backbone, preset_components
from diffportrait3d.pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline


def count_passes(pipe):
    calls, rows = Counter(), Counter()

    def hook(name):
        def f(_m, args, kwargs):
            calls[name] += 1
            rows[name] += (args[0] if args else kwargs["sample"]).shape[0]
        return f

    handles = [getattr(pipe, n).register_forward_pre_hook(hook(n), with_kwargs=True) for n in ("unet", "reference_unet", "controlnet")]
    return calls, rows, handles


@torch.no_grad()
def step(pipe, x, ref, cond, mode, t=500):
    nets, ctx = pipe.networks, pipe.prompt_embedding()
    bank = shared_reference_bank(nets, ref, t, ctx) if mode == "fast" else None
    return guided_eps(nets, x, t, ctx, ref, cond, 3.0, bank=bank, mode=mode)[0]


def bench_tiny(views=8, repeats=20):
    pipe = DiffPortrait3DPipeline(**preset_components("tiny"))
    g = torch.Generator().manual_seed(0)
    x, ref, cond = torch.randn(views, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g), torch.rand(views, 3, 64, 64, generator=g)
    times = {}
    for mode in ("naive", "fast"):
        step(pipe, x, ref, cond, mode)  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            step(pipe, x, ref, cond, mode)
        times[mode] = (time.perf_counter() - t0) / repeats
        calls, rows, handles = count_passes(pipe)
        step(pipe, x, ref, cond, mode)
        for h in handles:
            h.remove()
        print(f"tiny, {views} views, {mode:5s}: {times[mode] * 1000:7.1f} ms/step; passes per step "
              + ", ".join(f"{n} {calls[n]} call(s) x {rows[n] // max(calls[n], 1)} rows" for n in ("reference_unet", "controlnet", "unet")))
    print(f"fast / naive time: {times['fast'] / times['naive']:.3f}  (speed-up x{times['naive'] / times['fast']:.2f})")


def bench_full(views=2, size=256):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    t0 = time.perf_counter()
    unet = UNet2DConditionModel(sample_size=size // 8, cross_attention_dim=768, attention_head_dim=8)  # SD1.5 layout
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    pipe = DiffPortrait3DPipeline(**components_from_backbone(unet, vae, torch.randn(1, 77, 768)))
    n_params = sum(p.numel() for n in ("unet", "reference_unet", "controlnet", "view_modules") for p in getattr(pipe, n).parameters())
    print(f"full size built in {time.perf_counter() - t0:.1f} s: {n_params / 1e9:.2f} B parameters, "
          f"{len([m for m in pipe.view_modules.modules() if m.__class__.__name__ == 'ViewModule'])} view modules")
    g = torch.Generator().manual_seed(0)
    h = size // 8
    x, ref, cond = torch.randn(views, 4, h, h, generator=g), torch.randn(1, 4, h, h, generator=g), torch.rand(views, 3, size, size, generator=g)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    eps = step(pipe, x, ref, cond, "fast")
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"full size, {views} views at {size}x{size}: one step {dt:.2f} s, peak RSS {peak / 2**20:.2f} GiB "
          f"(+{(peak - rss0) / 2**20:.2f} GiB during the step), eps std {eps.std():.3f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    bench_tiny()
    if a.full:
        bench_full()
