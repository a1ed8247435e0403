"""Training cost per stage at the miniature size, and the full-size parameter split per stage.

    python benchmarks/bench_training.py [--steps 10] [--threads 2]

For each stage (its real batch: 16 images for vae/base, 8 pairs for reference/view, one group of
8 views for consistency, 8 pairs for noise3d) a child process builds the stage, runs `--steps`
optimiser steps on random tensors and reports steps/s and its peak RSS. Then the SD1.5-size
model (built on the meta device, no memory) is split into trainable / frozen parameters per stage.
"""

import argparse
import multiprocessing as mp
import resource
import time

import torch


def _mini_pipe():
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from diffportrait3d.models.presets import MINI_UNET, MINI_VAE
    from diffportrait3d.pipeline.build import components_from_backbone
    from diffportrait3d.pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline

    return DiffPortrait3DPipeline(**components_from_backbone(UNet2DConditionModel(**MINI_UNET), AutoencoderKL(**MINI_VAE), torch.randn(1, 8, 64)))


def _stage_and_batch(name):
    from diffportrait3d.cameras import camera_labels
    from diffportrait3d.models.noise3d import NoiseModel3D
    from diffportrait3d.training.stages.base_models import BaseUNetStage, VAEStage
    from diffportrait3d.training.stages.diffportrait3d import DiffPortrait3DStage
    from diffportrait3d.training.stages.noise3d_stage import Noise3DStage

    img = lambda *s: torch.rand(*s) * 2 - 1  # noqa: E731
    pipe = _mini_pipe()
    if name == "vae":
        return VAEStage(pipe.vae), {"image": img(16, 3, 64, 64)}
    if name == "base":
        return BaseUNetStage(pipe.unet, pipe.vae, pipe.prompt_embedding), {"image": img(16, 3, 64, 64)}
    if name == "noise3d":
        labels = torch.as_tensor(camera_labels([0] * 8, [0] * 8), dtype=torch.float32)
        return Noise3DStage(NoiseModel3D()), {"reference": img(8, 3, 64, 64), "target": img(8, 3, 64, 64),
                                               "reference_label": labels, "target_label": labels}
    batch = {"reference": img(8, 3, 64, 64), "target": img(8, 3, 64, 64), "condition": img(8, 3, 64, 64)}
    if name == "consistency":
        batch = {"reference": img(1, 3, 64, 64), "targets": img(1, 8, 3, 64, 64), "conditions": img(1, 8, 3, 64, 64)}
    return DiffPortrait3DStage(name, pipe, views=8), batch


def _run(name, steps, threads, q):
    torch.set_num_threads(threads)
    stage, batch = _stage_and_batch(name)
    opt = torch.optim.AdamW(stage.parameters(), lr=1e-5)

    def one(i):
        with stage.context():
            loss, _ = stage.loss(batch, torch.Generator().manual_seed(i))
            loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    one(0)  # warm-up
    t0 = time.perf_counter()
    for i in range(steps):
        one(i + 1)
    q.put((steps / (time.perf_counter() - t0), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10))


def full_size_split():
    from accelerate import init_empty_weights
    from diffusers import ControlNetModel, UNet2DConditionModel

    from diffportrait3d.pipeline.build import view_modules_for
    from diffportrait3d.training.stages.diffportrait3d import reference_unet_unused

    with init_empty_weights():
        unet = UNet2DConditionModel(cross_attention_dim=768, attention_head_dim=8)
        ref = UNet2DConditionModel(cross_attention_dim=768, attention_head_dim=8)
        cn = ControlNetModel.from_unet(unet)
        views = view_modules_for(unet)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    unused = set(reference_unet_unused(ref))
    ref_trained = sum(p.numel() for k, p in ref.named_parameters() if k not in unused)
    total = n(unet) + n(ref) + n(cn) + n(views)
    for stage, trained in (("reference", ref_trained), ("view", n(cn)), ("consistency", n(views))):
        print(f"full size, {stage:11s}: trainable {trained / 1e6:8.1f} M, frozen {(total - trained) / 1e6:8.1f} M "
              f"(of {total / 1e6:.1f} M in backbone, reference UNet, ControlNet, view modules)")
    print(f"reference UNet parameters left out of the optimiser: {sum(p.numel() for k, p in ref.named_parameters() if k in unused) / 1e6:.2f} M")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    ctx = mp.get_context("spawn")
    for name in ("vae", "base", "reference", "view", "consistency", "noise3d"):
        q = ctx.Queue()
        p = ctx.Process(target=_run, args=(name, a.steps, a.threads, q))
        p.start()
        rate, rss = q.get()
        p.join()
        print(f"miniature {name:11s}: {rate:6.2f} steps/s, peak RSS {rss:7.0f} MiB")
    full_size_split()
