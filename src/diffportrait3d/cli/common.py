"""Argument groups shared by several commands."""

import argparse


def add_model_args(p, default_model=None):
    p.add_argument("--model", default=default_model, required=default_model is None, help="model folder or hub id")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"], help="weights and activations precision")


def add_sampling_args(p):
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (the release uses 50)")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale")
    p.add_argument("--eta", type=float, default=0.5, help="DDIM eta (0 = deterministic)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--group", type=int, default=8, help="views denoised together by the view modules (max 32)")
    add_view_plan_args(p)


def add_view_plan_args(p):
    p.add_argument("--group-mode", default=None, dest="group_mode", metavar="MODE",
                   help="how more views than one group are denoised: shifted (default: group boundaries move every "
                        "other step, no seams, no extra cost), windows (overlapping windows, averaged), groups (the "
                        "release: independent groups, exact); add +anchors and/or +freenoise, e.g. windows+anchors")
    p.add_argument("--overlap", type=int, default=None, help="windows: views shared by neighbouring windows (default group/4)")
    p.add_argument("--anchors", type=int, default=None, help="anchor views rendered first and attended to by all (default 4 with +anchors)")
    p.add_argument("--loop", action=argparse.BooleanOptionalAction, default=None,
                   help="wrap the windows around a closed path (default: detected, first camera ~ last camera)")


def view_plan(args):
    from ..pipeline.view_windows import DEFAULT, ViewPlan

    extra = {k: getattr(args, k) for k in ("overlap", "anchors", "loop") if getattr(args, k) is not None}
    if args.group_mode is None and not extra:
        return None  # the pipeline's default: DEFAULT beyond one group, the release within one
    return ViewPlan.parse(args.group_mode or DEFAULT, group_size=args.group, **extra)


def add_camera_args(p):
    p.add_argument("--yaw", default="-40:40", help="yaw range A:B or one value, degrees (positive: camera to the subject's left)")
    p.add_argument("--pitch", default="0", help="pitch range A:B or one value, degrees (positive: camera above)")
    p.add_argument("--views", type=int, default=16, help="number of views (frames sampled from a condition video)")
    p.add_argument("--path", default="orbit", help="orbit, nod, spiral, or a JSON file of angles or 25-float EG3D labels")
    p.add_argument("--condition-seed", type=int, default=0, dest="condition_seed", help="identity drawn by the built-in renderer")
