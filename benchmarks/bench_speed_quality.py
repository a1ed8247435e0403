"""Exact mode vs each fast sampling mode: whole-render wall time and quality, in one run.

    python benchmarks/bench_speed_quality.py [--model mini] [--identities 2] [--views 16] [--modes exact,fast,...]
                                             [--threads 1] [--full]

On held-out subjects of the miniature world (drawn as `dp3d synth --seed 1000` draws them, as
benchmarks/bench_miniature_quality.py does; the shipped model trained on seed 0), each rendered from
its random reference camera along a 16-view yaw orbit (-45..45), every mode renders the same views
from the same seed. Printed per mode: wall time of the whole render (VAE, noise model and all
steps), its speed-up over exact, SSIM to the ground-truth renders, identity retrieval (is the view
closest to its own identity's render among 8 identities at that camera), yaw error by
render-and-compare, and the flicker ratio (mean view-to-view change / the ground truth's); the last
columns are each metric relative to exact mode's. --noise-floor adds the row "exact, other seed",
exact mode with other noise: differences smaller than its own are chance. `turbo` needs a distilled model folder
(`dp3d train --stage distill`, scripts/distill_miniature.sh).

--full adds one denoising step of an SD1.5-size model (random weights: speed does not depend on
the weight values) at 512x512 for 8 views, fp32 on the CPU, with peak memory; every mode's step is
that same evaluation, so exact and fast renders cost 50 and 12 of them (several minutes, ~10 GB).
"""

import argparse
import resource
import time
from functools import lru_cache

import numpy as np
import torch

from diffportrait3d.cameras import camera_labels
from diffportrait3d.head import Expression, Identity, build_scene
from diffportrait3d.conditions.sources import model_carrier_style, model_condition_seed, render_conditions
from diffportrait3d.metrics.heldout import HeldoutSubject, view_change
from diffportrait3d.metrics.render_compare import identity_retrieval, render_compare_pose
from diffportrait3d.metrics.ssim import ssim
from diffportrait3d.pipeline.loading import load_pipeline
from diffportrait3d.pipeline.modes import MODES

GALLERY = 8


class Orbit:
    """A held-out subject (drawn as `dp3d synth --seed SEED` draws subject i), its reference camera,
    a yaw orbit's ground truth and, per view, a gallery of GALLERY identities at that camera."""

    def __init__(self, seed: int, i: int, yaws, rng):
        self.subject = s = HeldoutSubject(seed, i)
        self.render = lru_cache(maxsize=None)(s.render)  # render-and-compare revisits the same cameras
        self.yaws = np.asarray(yaws, np.float64)
        self.labels = camera_labels(self.yaws, np.zeros_like(self.yaws))
        self.truth = torch.stack([self.render(float(y), 0.0) for y in self.yaws])
        others = [build_scene(Identity.sample(int(k)), Expression()) for k in rng.integers(2**31, size=GALLERY - 1)]
        self.gallery = torch.stack([torch.stack([self.truth[j]] + [s.render(float(y), 0.0, o) for o in others])
                                    for j, y in enumerate(self.yaws)])  # (N, K, 3, H, W), own identity first


def quality(views, orbit: Orbit) -> dict:
    est = [render_compare_pose(v, orbit.render, yaws=range(-90, 91, 15), pitches=(0.0,), refine_to=1.0)[0] for v in views]
    return {"SSIM": float(ssim(views, orbit.truth).mean()),
            "ID": identity_retrieval(views, orbit.gallery, [0] * len(views)).value,
            "yaw err": float(np.abs(np.array(est) - orbit.yaws).mean()),
            "flicker": view_change(views) / view_change(orbit.truth)}


def render(pipe, orbit: Orbit, conds, mode, seed):
    s = orbit.subject
    t0, c0 = time.perf_counter(), time.process_time()
    out = pipe(s.images[:1], conds, mode=mode, proxy_images="auto", condition_labels=orbit.labels, reference_label=s.labels[0],
               generator=torch.Generator().manual_seed(seed), output_type="pt")
    return out.images * 2 - 1, time.perf_counter() - t0, time.process_time() - c0


NOISE_FLOOR = "exact, other seed"  # exact mode with other noise: how much the metrics move by chance


def bench_modes(args):
    pipe = load_pipeline(args.model, "cpu")
    pipe.set_progress_bar_config(disable=True)
    yaws = np.linspace(-45, 45, args.views)
    rng = np.random.default_rng(args.seed)
    orbits = [Orbit(args.seed, i, yaws, rng) for i in range(args.identities)]
    conds = render_conditions(orbits[0].labels, pipe.image_size, model_condition_seed(pipe), model_carrier_style(pipe))  # as `dp3d render` draws them
    modes = args.modes.split(",") + ([NOISE_FLOOR] if args.noise_floor else [])
    rows = {m: [] for m in modes}
    for i, orbit in enumerate(orbits):
        for m in modes:  # alternated per identity, so that load from other processes hits every mode alike
            seed = args.seed + i + (1000 if m == NOISE_FLOOR else 0)
            views, wall, cpu = render(pipe, orbit, conds, "exact" if m == NOISE_FLOOR else m, seed)
            rows[m].append(dict(quality(views, orbit), wall=wall, cpu=cpu))
            print(f"  identity {i} {m:18s} wall {wall:6.1f} s, CPU {cpu:6.1f} s", flush=True)
    mean = {m: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]} for m, rs in rows.items()}
    e = mean["exact"]
    print(f"\n{args.identities} held-out identities x {args.views} views, model {args.model}, {torch.get_num_threads()} thread(s); "
          "speed-up = exact's CPU time / the mode's (wall time moves with the machine's load)")
    print("| mode | setting | wall s | CPU s | speed-up | SSIM | ID retr. | yaw err ° | flicker | SSIM/exact | ID/exact | Δyaw ° | flicker/exact |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for m, r in mean.items():
        md = MODES["exact" if m == NOISE_FLOOR else m]
        if md.student:
            turbo = pipe.config.get("turbo") or {}
            setting = f"distilled student, {turbo.get('solver', 'lcm').upper()}, {turbo.get('steps', md.steps)} steps, guidance {turbo.get('guidance_scale')} folded in"
        else:
            setting = f"{md.solver or 'DDIM (pipeline scheduler)'}, {md.steps} steps" + (f", ref every {md.reference_every}" if md.reference_every > 1 else "")
        print(f"| {m} | {setting} | {r['wall']:.1f} | {r['cpu']:.1f} | x{e['cpu'] / r['cpu']:.2f} | {r['SSIM']:.4f} | "
              f"{r['ID']:.3f} | {r['yaw err']:.2f} | {r['flicker']:.3f} | {r['SSIM'] / e['SSIM']:.3f} | "
              f"{r['ID'] / max(e['ID'], 1e-9):.3f} | {r['yaw err'] - e['yaw err']:+.2f} | {r['flicker'] / e['flicker']:.3f} |")


def bench_full(views=8, size=512):
    """One step of exact mode at full size. Every mode's step is this same guided evaluation of all
    views (the solvers' own arithmetic is negligible), so a render costs steps x this."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from diffportrait3d.pipeline.build import components_from_backbone
    from diffportrait3d.pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline
    from diffportrait3d.pipeline.view_groups import ViewConditions, grouped_eps

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=size // 8, cross_attention_dim=768, attention_head_dim=8)  # SD1.5 layout
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    pipe = DiffPortrait3DPipeline(**components_from_backbone(unet, vae, torch.randn(1, 77, 768)))
    g = torch.Generator().manual_seed(0)
    c, h = unet.config.in_channels, size // 8
    x = torch.randn(views, c, h, h, generator=g)
    cond = ViewConditions(pipe.prompt_embedding(), torch.randn(1, c, h, h, generator=g), torch.rand(views, 3, size, size, generator=g) * 2 - 1)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.no_grad():
        t0, c0 = time.perf_counter(), time.process_time()
        grouped_eps(pipe.networks, x, 500, cond, views)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"full size (SD1.5 layout, random weights), {views} views at {size}x{size}, fp32 CPU, {torch.get_num_threads()} thread(s): "
          f"one step wall {wall:.1f} s, CPU {cpu:.1f} s; peak RSS {peak / 2**20:.1f} GiB (+{(peak - rss0) / 2**20:.1f} during the step)")
    for m in ("exact", "fast"):
        print(f"  {m}: {MODES[m].steps} steps -> ~{MODES[m].steps * wall / 60:.1f} min per {views}-view render")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mini")
    ap.add_argument("--identities", type=int, default=2)
    ap.add_argument("--views", type=int, default=16)
    ap.add_argument("--modes", default="exact,fast,dpm++2m-sde-10,dpm++2m-12,unipc-10,ref-every-2")
    ap.add_argument("--seed", type=int, default=1000, help="held-out dataset seed (the shipped model trained on seed 0)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--noise-floor", action="store_true", help="also exact mode with other noise (the metrics' chance spread)")
    ap.add_argument("--full", action="store_true", help="also one step of an SD1.5-size model at 512x512, 8 views")
    ap.add_argument("--full-only", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if not a.full_only:
        bench_modes(a)
    if a.full or a.full_only:
        bench_full()
