"""From views to a 3D head: how well one set of 3D Gaussians explains an orbit, and its mesh's outline.

    PYTHONPATH=src python benchmarks/bench_lift.py [--subjects 2] [--seed 1000] [--res 64] [--views 32]
        [--steps 300] [--gaussians 2000] [--mini] [--mini-steps 8] [--threads 2] [--json out.json]

For each held-out procedural head (HeldoutSubject(seed, i): identities `dp3d synth --seed 0` never
drew) a spiral orbit of `--views` cameras (yaw -60..60, pitch one sine period over -10..10). The
fit sees every other view (even indices) and is scored on those (fitted) and on the others
(held out): PSNR and SSIM of the render over the learned backdrop, the fit's wall time, and the
silhouette IoU of the extracted mesh against the renderer's exact head mask at the held-out
cameras. Inputs:
- truth: the renderer's images, perfectly 3D-consistent: the ceiling of the method;
- mini (--mini): the shipped `mini` model's own orbit of the same head from its reference (camera
  0 of the subject), scored against the model's own held-out views, so the gap to `truth` is a
  3D-consistency figure for the model (its IoU is still against the true head).
Targets on truth at 64 px (issue 23): held-out PSNR >= 28 dB, IoU >= 0.9, fit <= 2 min on 2 cores.
"""

import argparse
import json
import time

import numpy as np
import torch

from diffportrait3d.cameras import make_trajectory
from diffportrait3d.head import render_scene
from diffportrait3d.lift import FitConfig, extract_mesh, fit_gaussians, render_view, silhouette
from diffportrait3d.metrics.heldout import HeldoutSubject, generate_views
from diffportrait3d.metrics.psnr import psnr
from diffportrait3d.metrics.ssim import ssim


def orbit_truth(subject: HeldoutSubject, labels, res: int):
    renders = [render_scene(subject.scene, label, res, light=subject.light) for label in labels]
    images = torch.stack([torch.from_numpy(r.image).permute(2, 0, 1).float() / 255 for r in renders])
    return images, np.stack([r.mask for r in renders]) > 0.5


def score(images, labels, masks, cfg: FitConfig, mesh_grid: int) -> dict:
    fit_idx, held = np.arange(0, len(labels), 2), np.arange(1, len(labels), 2)
    fit = fit_gaussians(images[fit_idx], labels[fit_idx], cfg, progress=False)
    row = {"fit_s": fit.seconds}
    for name, idx in (("fitted", fit_idx), ("held_out", held)):
        pred = torch.stack([render_view(fit, labels[i]).cpu() for i in idx]) * 2 - 1
        row[f"{name}_psnr"] = psnr(pred, images[idx] * 2 - 1).mean().item()
        row[f"{name}_ssim"] = ssim(pred, images[idx] * 2 - 1).mean().item()
    t = time.perf_counter()
    try:
        mesh = extract_mesh(fit.gaussians, mesh_grid)
    except ValueError as e:  # no solid surface (a fit far too short): no mesh numbers
        print(f"no mesh: {e}")
        return {**row, "iou": float("nan"), "watertight": False, "vertices": 0}
    row["mesh_s"] = time.perf_counter() - t
    sil = [silhouette(mesh, labels[i], cfg.resolution) for i in held]
    row["iou"] = float(np.mean([(s & masks[i]).sum() / (s | masks[i]).sum() for s, i in zip(sil, held)]))
    row["watertight"] = bool(mesh.is_watertight)
    row["vertices"] = len(mesh.vertices)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1000, help="held-out dataset seed (the shipped model trained on seed 0)")
    ap.add_argument("--subjects", type=int, default=2)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--views", type=int, default=32)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--gaussians", type=int, default=2000)
    ap.add_argument("--mesh-grid", type=int, default=96)
    ap.add_argument("--mini", action="store_true", help="also fit the mini model's own orbit of each head")
    ap.add_argument("--mini-steps", type=int, default=8, help="denoising steps of the mini model's orbit")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = FitConfig(steps=a.steps, gaussians=a.gaussians, resolution=a.res, device=a.device)
    traj = make_trajectory("-60:60", "-10:10", a.views, "spiral")
    angles = np.stack([traj.yaw, traj.pitch], 1)
    pipe = None
    if a.mini:
        from diffportrait3d.pipeline.loading import load_pipeline

        pipe = load_pipeline("mini", device="cpu")
        pipe.set_progress_bar_config(disable=True)
    rows = []
    for i in range(a.subjects):
        # the mini model takes its reference (and condition renders) at its own size
        subject = HeldoutSubject(a.seed, i, views=1, res=pipe.image_size if pipe is not None else a.res)
        images, masks = orbit_truth(subject, traj.labels, a.res)
        rows.append({"subject": i, "input": "truth", **score(images, traj.labels, masks, cfg, a.mesh_grid)})
        if pipe is not None:
            with torch.no_grad():
                gen = generate_views(pipe, subject, angles, a.mini_steps)
            gen = (torch.nn.functional.interpolate(gen, size=(a.res, a.res), mode="area") + 1) / 2
            rows.append({"subject": i, "input": "mini", **score(gen.clamp(0, 1), traj.labels, masks, cfg, a.mesh_grid)})
        for r in rows[-2 if pipe is not None else -1:]:
            print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()), flush=True)
    print(f"\n{a.views} views (fit on {len(traj.labels[::2])}), {a.res} px, {a.steps} steps, {a.gaussians} Gaussians, "
          f"{a.threads} threads")
    print("| input | fitted PSNR | fitted SSIM | held-out PSNR | held-out SSIM | mesh IoU | fit s |")
    print("|---|---|---|---|---|---|---|")
    for name in ("truth", "mini"):
        sel = [r for r in rows if r["input"] == name]
        if sel:
            m = {k: np.mean([r[k] for r in sel]) for k in ("fitted_psnr", "fitted_ssim", "held_out_psnr", "held_out_ssim",
                                                          "iou", "fit_s")}
            print(f"| {name} | {m['fitted_psnr']:.2f} | {m['fitted_ssim']:.3f} | {m['held_out_psnr']:.2f} | "
                  f"{m['held_out_ssim']:.3f} | {m['iou']:.3f} | {m['fit_s']:.0f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
