"""What the miniature model has learned, on identities it never saw, beside its baselines (issue 10).

    python benchmarks/bench_miniature_quality.py [--model mini] [--seed 1000] [--subjects 8] [--steps 50]
        [--orbit-views PLAN] [--orbit-only]

Held-out subjects are drawn exactly as `dp3d synth --subjects N --frames 1 --views 6 --seed SEED`
draws them (metrics/heldout.py): a random identity, light and six random cameras each. The reference is the
subject's first camera (not frontal), the other five are targets. Default sampling settings
(DDIM 50 steps, eta 0.5, CFG 3, 3D-aware noise from the reference's camera).

Printed, for the model and in the same run its baselines (copy the reference, view ControlNet off,
view modules off, Gaussian instead of 3D-aware noise):
- VAE reconstruction of the held-out renders: PSNR, SSIM (the ceiling of everything else);
- targets: SSIM to the ground truth (mean and worst view), identity retrieval (is the generated
  view closest to its own identity among 8 rendered at that camera?), yaw error by
  render-and-compare against the subject's own renders, background colour error (mean colour
  of the 4-pixel border vs the ground truth's, 0-255);
- reconstruction and draw spread: 4 views in one group (4 independent noise draws) at the reference's
  OWN camera: SSIM to the reference (mean, worst), spread (std across draws, 0-255), colour error of
  the central quarter (face, hair) and of the border (background) against the truth (0-255); the
  same at a novel camera (the first target). Beside it, another identity's reference at the same
  camera: if the views do not change, the reference is ignored;
- a 16-view yaw orbit (-45..45) from the same reference: flicker ratio (mean view-to-view change
  / the ground truth's), background drift (std across views of the mean border colour, 0-255),
  worst view SSIM, broken views (SSIM to the ground truth < 0.3) and the largest neighbour step / the median
  (the largest over the subjects; where each subject's falls is printed below). 16 views are two groups: the
  pipeline's default view plan for long paths (pipeline/view_windows.py) unless --orbit-views.
"""

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from diffportrait3d.head import Expression, Identity, build_scene
from diffportrait3d.metrics.heldout import HeldoutSubject, border_colour, draws_at, generate_views, view_change
from diffportrait3d.metrics.psnr import psnr
from diffportrait3d.metrics.render_compare import identity_retrieval, render_compare_pose
from diffportrait3d.metrics.ssim import ssim
from diffportrait3d.pipeline.loading import load_pipeline
from diffportrait3d.pipeline.noise_mean import ALIASES, NOISE_MEANS

GALLERY = 8
ORBIT = np.linspace(-45, 45, 16)


def _at_camera(other: HeldoutSubject, subject: HeldoutSubject) -> HeldoutSubject:
    """`other`'s identity with `subject`'s reference camera and light: the same framing, another person."""
    o = copy.copy(other)
    o.angles, o.labels, o.light = subject.angles, subject.labels, subject.light
    o.images = torch.stack([o.render(y, p) for y, p in subject.angles])
    return o


def gallery_identities(rng, k: int = GALLERY - 1) -> list:
    """k other identities (scenes) for identity retrieval, drawn from `rng` (one draw per held-out subject)."""
    return [build_scene(Identity.sample(int(i)), Expression()) for i in rng.integers(2**31, size=k)]


def gallery_at(subject: HeldoutSubject, targets, others) -> torch.Tensor:
    """(N, 1 + len(others), 3, H, W): at each target camera the subject itself (index 0), then the others."""
    return torch.stack([torch.stack([subject.render(y, p)] + [subject.render(y, p, o) for o in others]) for y, p in targets])


def estimate_yaws(gen: torch.Tensor, subject: HeldoutSubject) -> np.ndarray:
    """Each view's yaw (degrees) by render-and-compare against the subject's own renders."""
    return np.array([render_compare_pose(g, subject.render, yaws=range(-90, 91, 15), pitches=(-15, 0, 15), refine_to=2.0)[0]
                     for g in gen])


def target_measures(gen: torch.Tensor, subject: HeldoutSubject, targets, gallery: torch.Tensor) -> dict:
    """Generated views at `targets` (N, 2) against the truth: SSIM per view, identity retrieval (the fraction of
    views nearest their own identity in `gallery`), yaw error per view, background colour error per view, and
    the estimated yaws."""
    gt = torch.stack([subject.render(y, p) for y, p in targets])
    est = estimate_yaws(gen, subject)
    return {"ssim": ssim(gen, gt).tolist(), "retrieval": identity_retrieval(gen, gallery, [0] * len(gen)).value,
            "yaw": np.abs(est - np.asarray(targets)[:, 0]).tolist(), "bg": (border_colour(gen) - border_colour(gt)).abs().mean(1).tolist(),
            "yaw_estimate": est.tolist()}


def orbit_angles() -> np.ndarray:
    return np.stack([ORBIT, np.zeros_like(ORBIT)], 1)


def orbit_measures(gen: torch.Tensor, truth: torch.Tensor) -> dict:
    """An orbit's views (N, 3, H, W) against the truth at the same cameras: flicker ratio, background drift,
    worst view SSIM, broken views, the largest neighbour step / the median and where it falls."""
    per_view = ssim(gen, truth)
    steps_ = (gen[1:] - gen[:-1]).abs().mean((1, 2, 3))
    return {"flicker": view_change(gen) / view_change(truth), "bg_drift": border_colour(gen).std(0).mean().item(),
            "worst": per_view.min().item(), "broken": int((per_view < 0.3).sum()),
            "jump": (steps_.max() / steps_.median()).item(), "jump_at": int(steps_.argmax())}


NOISE_MEAN = {"noise_mean": None}  # --noise-mean, for every generated view (None: the model's default)


def generate(pipe, subject, angles, steps, **kw):
    return generate_views(pipe, subject, angles, steps, **NOISE_MEAN, **kw)


VARIANTS = {  # name -> generate() keywords; None: copy the reference
    "model": {},
    "copy reference": None,
    "ControlNet off": {"control": 0.0},
    "view modules off": {"modules": False},
    "Gaussian noise": {"proxy": None},
}
ORBIT_VARIANTS = ("model", "view modules off", "Gaussian noise")
DRAW_VARIANTS = ("model", "another identity's reference", "Gaussian noise")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mini")
    ap.add_argument("--seed", type=int, default=1000, help="held-out dataset seed (the shipped model trained on seed 0)")
    ap.add_argument("--subjects", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--orbit-views", default=None, help="view plan of the orbit, e.g. groups (default: the pipeline's)")
    ap.add_argument("--orbit-only", action="store_true", help="measure the orbit (and the VAE) only, not the targets")
    ap.add_argument("--json", default=None, help="also write the table as JSON here")
    ap.add_argument("--noise-mean", default=None, type=lambda v: ALIASES.get(v, v), choices=NOISE_MEANS,
                    help="the pipeline's noise_mean (default: the model's)")
    a = ap.parse_args()
    NOISE_MEAN["noise_mean"] = a.noise_mean
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    pipe = load_pipeline(a.model, device="cpu")
    pipe.set_progress_bar_config(disable=True)
    subjects = [HeldoutSubject(a.seed, i) for i in range(a.subjects)]

    # the VAE's ceiling on every held-out render
    with torch.no_grad():
        x = torch.cat([s.images for s in subjects])
        rec = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
    vae = {"PSNR": psnr(rec, x).mean().item(), "SSIM": ssim(rec, x).mean().item()}

    rows = {name: {"ssim": [], "retrieval": [], "yaw": [], "bg": []} for name in VARIANTS}
    orbit = {name: {"flicker": [], "bg_drift": [], "worst": [], "broken": 0, "jump": [], "jump_at": []} for name in ORBIT_VARIANTS}
    draws = {name: {"rec": [], "spread": [], "face": [], "bg": [], "novel": [], "novel_spread": []} for name in DRAW_VARIANTS}
    rng = np.random.default_rng(a.seed)
    for si, s in enumerate(subjects):
        targets, gt = s.angles[1:], s.images[1:]
        others = gallery_identities(rng)
        for name, kw in ({} if a.orbit_only else VARIANTS).items():
            if name == "model":  # the gallery once per subject, only when the targets are measured
                gallery = gallery_at(s, targets, others)
            gen = s.images[:1].expand_as(gt) if kw is None else generate(pipe, s, targets, a.steps, **kw)
            r, m = rows[name], target_measures(gen, s, targets, gallery)
            r["ssim"] += m["ssim"]
            r["retrieval"].append(m["retrieval"])
            r["yaw"] += m["yaw"]
            r["bg"] += m["bg"]
        for name in ({} if a.orbit_only else DRAW_VARIANTS):
            d, kw = draws[name], {"proxy": None} if name == "Gaussian noise" else {}
            # another identity's reference: the next held-out subject's, seen from this subject's reference camera
            src = subjects[(si + 1) % len(subjects)] if name.startswith("another") else s
            who = src if src is s else _at_camera(src, s)
            # always against THIS subject's truth: another reference must pull the views away from it
            rec, nov = (draws_at(pipe, who, cam, a.steps, truth_of=s, **NOISE_MEAN, **kw) for cam in s.angles[:2])
            d["rec"] += rec["ssim"]
            d["novel"] += nov["ssim"]
            d["spread"].append(rec["spread"])
            d["novel_spread"].append(nov["spread"])
            d["face"].append(rec["face_error"])
            d["bg"].append(rec["background_error"])
        angles = orbit_angles()
        truth = torch.stack([s.render(y) for y in ORBIT])
        for name in ORBIT_VARIANTS:
            gen = generate(pipe, s, angles, a.steps, views=a.orbit_views, **VARIANTS[name])
            o, m = orbit[name], orbit_measures(gen, truth)
            for k in ("flicker", "bg_drift", "worst", "jump", "jump_at"):
                o[k].append(m[k])
            o["broken"] += m["broken"]
        print(f"subject {si + 1}/{a.subjects} done ({time.perf_counter() - t0:.0f} s)", flush=True)

    table = {"vae": vae, "targets": {}, "orbit": {}}
    print(f"\nheld-out seed {a.seed}, {a.subjects} subjects x 5 targets (random reference camera), {a.steps} steps; "
          f"model {a.model}\n\nVAE reconstruction: PSNR {vae['PSNR']:.2f} dB, SSIM {vae['SSIM']:.3f}\n")
    print("| variant | SSIM mean | SSIM worst | identity retrieval | yaw error (deg) | background error (0-255) |")
    print("|---|---|---|---|---|---|")
    for name, r in ({} if a.orbit_only else rows).items():
        t = table["targets"][name] = {"ssim_mean": float(np.mean(r["ssim"])), "ssim_worst": float(np.min(r["ssim"])),
                                      "retrieval": float(np.mean(r["retrieval"])), "yaw_error": float(np.mean(r["yaw"])),
                                      "background_error": float(np.mean(r["bg"]))}
        print(f"| {name} | {t['ssim_mean']:.3f} | {t['ssim_worst']:.3f} | {t['retrieval']:.3f} | {t['yaw_error']:.1f} | "
              f"{t['background_error']:.1f} |")
    print("\nReconstruction (4 draws at the reference's own camera) and a novel camera (4 draws):\n")
    print("| variant | rec. SSIM mean | rec. SSIM worst | spread at ref. camera | face colour error | background colour error "
          "| novel SSIM mean | spread at novel camera |")
    print("|---|---|---|---|---|---|---|---|")
    for name, d in ({} if a.orbit_only else draws).items():
        t = table.setdefault("draws", {})[name] = {
            "rec_ssim_mean": float(np.mean(d["rec"])), "rec_ssim_worst": float(np.min(d["rec"])), "spread": float(np.mean(d["spread"])),
            "face_error": float(np.mean(d["face"])), "background_error": float(np.mean(d["bg"])),
            "novel_ssim_mean": float(np.mean(d["novel"])), "novel_spread": float(np.mean(d["novel_spread"]))}
        print(f"| {name} | {t['rec_ssim_mean']:.3f} | {t['rec_ssim_worst']:.3f} | {t['spread']:.1f} | {t['face_error']:.1f} | "
              f"{t['background_error']:.1f} | {t['novel_ssim_mean']:.3f} | {t['novel_spread']:.1f} |")
    print(f"\n16-view orbit (yaw -45..45, views {a.orbit_views or 'default'}): \n\n| variant | flicker ratio | background drift (0-255) | worst view SSIM | broken views | largest step / median |")
    print("|---|---|---|---|---|---|")
    for name, o in orbit.items():
        t = table["orbit"][name] = {"flicker": float(np.mean(o["flicker"])), "background_drift": float(np.mean(o["bg_drift"])),
                                    "worst_ssim": float(np.min(o["worst"])), "broken": o["broken"], "jump": float(np.max(o["jump"]))}
        print(f"| {name} | {t['flicker']:.3f} | {t['background_drift']:.1f} | {t['worst_ssim']:.3f} | "
              f"{t['broken']} of {16 * a.subjects} | {t['jump']:.2f} |")
    for name, o in orbit.items():  # where: a seam between groups, or somewhere along the head?
        at = ", ".join(f"{ORBIT[i]:+.0f}..{ORBIT[i + 1]:+.0f}" for i in o["jump_at"])
        print(f"{name}: each subject's largest step between yaw {at} (degrees)")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if a.json:
        Path(a.json).write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
