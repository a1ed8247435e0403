"""Training throughput of the product loop (training/loop.py) on this machine.

    python benchmarks/bench_training.py [--steps 6] [--batch-size 4] [--stages]

1. DataLoader workers: the `view` stage of a random-weight miniature model on a small `dp3d synth`
   dataset whose condition images are rendered on the fly (condition_source=render, the costly
   case), --workers 0 (loading in the training process) vs 2, one process. steps/s is the loop's
   own count (logs/loss.csv), which includes the workers' start.
2. Processes: the same run with 1 process vs 2 processes (DDP, gloo on CPU, each batch --batch-size,
   one torch thread each): steps/s, and samples/s (2 processes take a 2x larger global batch per step).
3. The SD1.5-size model (built on the meta device, no memory) split into trainable / frozen
   parameters per stage. With --stages also steps/s and peak RSS of every stage at the miniature size.

Ratios are against the baseline measured in the same run. On a shared machine the absolute numbers
move with the load; the ratios are what to read.
"""

import argparse
import os
import resource
import socket
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp


def mini_model(folder: Path):
    from diffportrait3d.pipeline.build import preset_components
    from diffportrait3d.pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline

    DiffPortrait3DPipeline(**preset_components("mini", seed=0)).save_pretrained(folder)


def run_training(rank, world, root: Path, name: str, steps: int, batch: int, workers: int, threads: int):
    from diffportrait3d.training.config import TrainConfig
    from diffportrait3d.training.loop import train
    from diffportrait3d.training.stages import build_stage

    torch.set_num_threads(threads)
    if world > 1:
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world))
    cfg = TrainConfig(stage="view", data=str(root / "data"), model=str(root / "model"), output=str(root / name), max_steps=steps,
                      batch_size=batch, lr=1e-4, save_every=10**6, sample_every=0, log_every=1, workers=workers).validate()
    stage = build_stage(cfg)
    train(cfg, stage, stage.dataset(cfg), progress=False)
    if world > 1:
        torch.distributed.destroy_process_group()


def rate(root: Path, name: str) -> float:
    """steps/s over the whole run, from the loop's own log."""
    return float((root / name / "logs" / "loss.csv").read_text().strip().splitlines()[-1].split(",")[3])


def timed_run(root, name, steps, batch, workers, threads, processes=1):
    if processes == 1:
        run_training(0, 1, root, name, steps, batch, workers, threads)
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        mp.start_processes(run_training, args=(processes, root, name, steps, batch, workers, threads), nprocs=processes,
                           start_method="spawn")
    return rate(root, name)


def _stage_rate(name, steps, threads, q):
    from diffportrait3d.pipeline.build import preset_components
    from diffportrait3d.pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline
    from diffportrait3d.training.stages import stage_class

    torch.set_num_threads(threads)
    img = lambda *s: torch.rand(*s) * 2 - 1  # noqa: E731
    pipe = DiffPortrait3DPipeline(**preset_components("mini", seed=0))
    n = 16 if name in ("vae", "base") else 8
    batch = {"image": img(n, 3, 64, 64), "reference": img(n, 3, 64, 64), "target": img(n, 3, 64, 64),
             "condition": img(n, 3, 64, 64), "seed": torch.arange(n)}
    if name == "consistency":
        batch = {"reference": img(1, 3, 64, 64), "targets": img(1, 8, 3, 64, 64), "conditions": img(1, 8, 3, 64, 64),
                 "seed": torch.arange(1)}
    if name == "vae":
        stage = stage_class(name)(pipe.vae)
    elif name == "base":
        stage = stage_class(name)(pipe.unet, pipe.vae, pipe.prompt_embedding)
    else:
        stage = stage_class(name)(pipe, views=8)
    opt = torch.optim.AdamW(stage.trained_parameters(), lr=1e-5)

    def one():
        with stage.context():
            stage(batch)[0].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    one()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--subjects", type=int, default=8)
    ap.add_argument("--stages", action="store_true", help="also steps/s of every stage at the miniature size")
    a = ap.parse_args()
    from diffportrait3d.data.synth import SynthConfig, synth

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synth(root / "data", SynthConfig(subjects=a.subjects, frames=1, views=4, res=64, seed=0), progress=False)
        mini_model(root / "model")
        print(f"view stage, miniature size, random weights, batch {a.batch_size} per process, {a.steps} steps, "
              f"conditions rendered on the fly; {os.cpu_count()} CPU cores; no GPU")
        r0 = timed_run(root, "w0", a.steps, a.batch_size, workers=0, threads=1)
        r2 = timed_run(root, "w2", a.steps, a.batch_size, workers=2, threads=1)
        print(f"1 process, DataLoader workers 0: {r0:6.3f} steps/s")
        print(f"1 process, DataLoader workers 2: {r2:6.3f} steps/s  ({r2 / r0:.2f}x)")
        p2 = timed_run(root, "p2", a.steps, a.batch_size, workers=0, threads=1, processes=2)
        print(f"2 processes (DDP, gloo), workers 0: {p2:6.3f} steps/s  ({p2 / r0:.2f}x steps/s, "
              f"{2 * p2 / r0:.2f}x samples/s of 1 process with workers 0)")
    if a.stages:
        ctx = mp.get_context("spawn")
        for name in ("vae", "base", "reference", "view", "consistency", "noise3d"):
            if name == "noise3d":
                continue  # benchmarks/bench_noise3d.py
            q = ctx.Queue()
            p = ctx.Process(target=_stage_rate, args=(name, a.steps, 1, q))
            p.start()
            r, rss = q.get()
            p.join()
            print(f"miniature {name:11s}: {r:6.2f} steps/s, peak RSS {rss:7.0f} MiB")
    full_size_split()


if __name__ == "__main__":
    main()
