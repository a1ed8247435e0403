"""Per-step cost of the exact path vs the authors' per-view recomputation, and one full-size step.

    python benchmarks/bench_pipeline.py [--full] [--threads N] [--size tiny|mini|medium]

Prints, for one group of 8 views: seconds per denoising step of the authors' order (naive), of the
exact path with the reference keys/values projected per view (as before issue 14) and once per
step (now), their ratios, and the network passes per step (calls x batch rows) of each network.
With --full: one step of an SD1.5-size model (random weights) at 256x256 for 2 views, wall time and peak RSS.
"""

import argparse
import resource
import time
from collections import Counter

import torch

from diffportrait3d.models.denoiser import guided_eps, naive_guided_eps, shared_reference_bank
from diffportrait3d.models.reference_attention import ReferenceBank
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
def step(pipe, x, ref, cond, path, t=500):
    nets, ctx = pipe.networks, pipe.prompt_embedding()
    if path == "naive":
        return naive_guided_eps(nets, x, t, ctx, ref, cond, 3.0)[0]
    bank = shared_reference_bank(nets, ref, t, ctx)
    if path == "per-view K/V":  # the bank expanded to one row per view: K/V projected V times, as before
        bank = ReferenceBank({k: b.expand(x.shape[0], -1, -1) for k, b in bank.items()})
    return guided_eps(nets, x, t, ctx, ref, cond, 3.0, bank=bank)[0]


MEDIUM_UNET = dict(block_out_channels=(64, 128, 256, 256), cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)


def small_pipe(size):
    if size in ("tiny", "mini"):
        return DiffPortrait3DPipeline(**preset_components(size))
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=16, **MEDIUM_UNET)  # SD1.5 layout at 1/5 width
    vae = AutoencoderKL(block_out_channels=(16, 16, 16, 16), layers_per_block=1, norm_num_groups=8,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    return DiffPortrait3DPipeline(**components_from_backbone(unet, vae, torch.randn(1, 77, 768)))


def bench_small(size, views=8, repeats=10):
    pipe = small_pipe(size)
    c, h = pipe.unet.config.in_channels, pipe.unet.config.sample_size
    g = torch.Generator().manual_seed(0)
    x, ref = torch.randn(views, c, h, h, generator=g), torch.randn(1, c, h, h, generator=g)
    cond = torch.rand(views, 3, pipe.image_size, pipe.image_size, generator=g)
    paths = ("naive", "per-view K/V", "exact")
    times = {p: [] for p in paths}
    for p in paths:
        step(pipe, x, ref, cond, p)  # warm-up
    for _ in range(repeats):  # alternated, so that load from other processes hits every path alike
        for p in paths:
            t0 = time.perf_counter()
            step(pipe, x, ref, cond, p)
            times[p].append(time.perf_counter() - t0)
    best = {p: min(v) for p, v in times.items()}
    for p in paths:
        calls, rows, handles = count_passes(pipe)
        step(pipe, x, ref, cond, p)
        for hd in handles:
            hd.remove()
        print(f"{size} ({h}x{h} latents), {views} views, {p:12s}: {best[p] * 1000:8.1f} ms/step (best of {repeats}); passes per step "
              + ", ".join(f"{n} {calls[n]} call(s) x {rows[n] // max(calls[n], 1)} rows" for n in ("reference_unet", "controlnet", "unet")))
    print(f"speed-up: exact vs naive x{best['naive'] / best['exact']:.2f}; "
          f"K/V once per step vs per view x{best['per-view K/V'] / best['exact']:.3f}")


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
    eps = step(pipe, x, ref, cond, "exact")
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"full size, {views} views at {size}x{size}: one step {dt:.2f} s, peak RSS {peak / 2**20:.2f} GiB "
          f"(+{(peak - rss0) / 2**20:.2f} GiB during the step), eps std {eps.std():.3f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size", default="tiny", choices=["tiny", "mini", "medium"])
    ap.add_argument("--repeats", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    bench_small(a.size, repeats=a.repeats)
    if a.full:
        bench_full()
