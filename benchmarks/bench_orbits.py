"""Long orbits: seam ratio, loop closure, flicker ratio and wall time of each view schedule, same run.

    PYTHONPATH=src python benchmarks/bench_orbits.py [--model mini] [--seed 0] [--identities 1] [--steps 8]
        [--mode exact] [--views 32] [--group 8] [--methods groups,windows,...] [--threads 1] [--out bench_orbits_out]

Held-out identities (seeds 900_500 + 10 * seed + i, never drawn by `dp3d synth`), a frontal reference
rendered by the built-in renderer, condition renders of identity 7 (as `dp3d demo`), the 3D-aware
initial noise of the model, and two paths of `--views` views: an open yaw orbit -40..40 and a closed
back-and-forth path -40 -> 40 -> -40 whose last view is one step before the first (detected as
closed, so the schedules wrap around). Metrics are metrics/orbit.py's and the mean SSIM against
the renderer's ground truth at the same cameras; `truth` rows are the ground truth's own values. Few DDIM steps
(default 8, say so when quoting) keep the run at a few minutes on 2 busy cores; every method runs
the same steps, noise seed and inputs, so the comparison is fair. `seam / truth`: the seam ratio over
the ground truth's own on the same path (the truth's is not 1: along a yaw orbit the view-to-view
change varies with the yaw, and the boundaries sit where it is large), so 1 = no seam beyond the
path's. Time ratio: wall time / groups';
on a shared machine wall time is noisy, so `passes` also gives the exact cost: views evaluated by the
networks over the run (anchor pass included) / groups'.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from diffportrait3d.cameras import camera_label, make_trajectory
from diffportrait3d.conditions.sources import model_carrier_style, model_condition_seed, render_conditions
from diffportrait3d.head import Expression, Identity, build_scene, render_scene
from diffportrait3d.media import grid, image_to_tensor, save_image, tensor_to_pil
from diffportrait3d.metrics.orbit import orbit_metrics
from diffportrait3d.metrics.ssim import ssim
from diffportrait3d.pipeline.loading import load_pipeline
from diffportrait3d.pipeline.view_windows import ViewPlan

METHODS = "groups,windows,shifted,shifted+mixed,shifted+progressive,shifted+camera,windows+camera"


def paths(n: int) -> dict:
    return {"yaw orbit": (make_trajectory("-40:40", "0", n, "orbit"), False),
            "back-and-forth": (make_trajectory("-40:40", "0", n, "bounce"), True)}  # ends one step short of its start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mini")
    ap.add_argument("--seed", type=int, default=0, help="picks the held-out identities and the noise")
    ap.add_argument("--identities", type=int, default=1)
    ap.add_argument("--views", type=int, default=32)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--mode", default="exact", help="sampling mode (pipeline/modes.py): exact = the release's DDIM, eta 0.5")
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="folder for results.json and contact sheets (optional)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_pipeline(args.model, "cpu")
    pipe.set_progress_bar_config(disable=True)
    size = pipe.image_size
    plans = [ViewPlan.parse(m, group_size=args.group) for m in args.methods.split(",")]
    ids = [900_500 + 10 * args.seed + i for i in range(args.identities)]
    rows, sheets = {}, {}
    for pname, (traj, closed) in paths(args.views).items():
        labels = traj.labels
        conds = render_conditions(labels, size, model_condition_seed(pipe), model_carrier_style(pipe))  # the model's carrier, as `dp3d render`
        for i, ident in enumerate(ids):
            scene = build_scene(Identity.sample(ident), Expression())
            ref = image_to_tensor(render_scene(scene, camera_label(0.0, 0.0), size).pil())
            truth = torch.stack([image_to_tensor(render_scene(scene, lab, size).pil()) for lab in labels])
            rows.setdefault((pname, "truth"), []).append(({**orbit_metrics(truth, args.group, truth, closed), "SSIM": 1.0}, 0.0))
            for plan in plans:
                t0 = time.perf_counter()
                out = pipe(ref[None], conds, num_inference_steps=args.steps, mode=args.mode, proxy_images="auto", condition_labels=labels,
                           views=plan, generator=torch.Generator().manual_seed(args.seed * 1000 + i), output_type="pt")
                dt = time.perf_counter() - t0
                views = out.images * 2 - 1
                metrics = orbit_metrics(views, args.group, truth, closed)
                metrics["SSIM"] = ssim(views, truth).mean().item()  # consistent is not enough: right, too
                metrics["passes"] = view_passes(plan, args.views, args.steps, closed)
                rows.setdefault((pname, plan.name), []).append((metrics, dt))
                if i == 0:
                    sheets.setdefault(pname, [[tensor_to_pil(x) for x in truth]]).append([tensor_to_pil(x) for x in views])
                print(f"  {pname:15s} id {ident} {plan.name:22s} {dt:6.1f} s", flush=True)
    table = summarise(rows)
    print(f"\n{args.views} views, groups of {args.group}, {args.steps} steps of mode {args.mode}, {len(ids)} held-out identities, "
          f"model {args.model}, seed {args.seed}, {args.threads} thread(s)\n")
    print("| path | method | seam ratio | seam / truth | loop closure | flicker ratio | SSIM to truth | wall time (s) | time / groups | passes / groups |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['path']} | {r['method']} | {r['seam ratio']:.3f} | {r['seam / truth']:.3f} | "
              + (f"{r['loop closure']:.3f}" if 'loop closure' in r else "-")
              + f" | {r['flicker ratio']:.3f} | {r['SSIM']:.3f} | {r['time']:.1f} | {r['time ratio']:.2f} | {r['passes ratio']:.2f} |")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps({"args": vars(args), "rows": table}, indent=1))
        for pname, sheet in sheets.items():
            save_image(grid(sheet), out / f"{pname.replace(' ', '_')}.png")  # rows: truth, then each method in order
        print(f"wrote {out}/results.json and contact sheets (rows: truth, {', '.join(p.name for p in plans)})")


def summarise(rows: dict) -> list[dict]:
    table = []
    for (pname, method), runs in rows.items():
        r = {"path": pname, "method": method}
        for key in runs[0][0]:
            r[key] = float(np.mean([m[key] for m, _ in runs]))
        r["time"] = float(sum(dt for _, dt in runs))
        table.append(r)
    for r in table:
        base = next(x["time"] for x in table if x["path"] == r["path"] and x["method"] == "groups")
        r["seam / truth"] = r["seam ratio"] / next(x["seam ratio"] for x in table if x["path"] == r["path"] and x["method"] == "truth")
        r["time ratio"] = r["time"] / base if r["method"] != "truth" else float("nan")
        r["passes ratio"] = r.get("passes", float("nan")) / next(x["passes"] for x in table if x["path"] == r["path"] and x["method"] == "groups")
    return table


def view_passes(plan: ViewPlan, n: int, steps: int, loop: bool) -> int:
    """Views the networks evaluate over a run: window sizes summed over the steps, plus the anchor pass."""
    main = sum(len(w) for k in range(steps) for w in plan.windows(n, k, loop))
    return main + (min(plan.anchors, n) * steps if plan.anchors and n > plan.group_size else 0)


if __name__ == "__main__":
    main()
