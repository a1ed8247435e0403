"""Argument groups and number types shared by several commands."""

import argparse
import sys

from ..preflight import describe_range, in_range

MAX_SEED = 2**63 - 1
DEFAULT_VIEWS = 16
MAX_VIEWS = 1024  # views per render: beyond this a turntable is a job for several runs


def number(lo=None, hi=None, integer: bool = True):
    """An argparse type for a number within lo..hi; argparse names the option in the error."""
    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if integer else 'a number'}") from None
        if not in_range(value, lo, hi, integer):
            raise argparse.ArgumentTypeError(f"{text} is out of range; {describe_range(lo, hi, integer)}")
        return value
    return parse


def add_model_args(p, default_model=None):
    p.add_argument("--model", default=default_model, required=default_model is None,
                   help="model folder, hub id, or 'mini' (the shipped miniature model)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"], help="weights and activations precision")


def add_mode_arg(p):
    from ..pipeline.modes import MODES

    p.add_argument("--mode", default="exact", choices=list(MODES),
                   help="exact: the released model's DDIM sampler; fast: the recommended fast setting (DPM-Solver++ 2M SDE, "
                        "12 steps); the others are measured alternatives (README, Speed)")


def add_steps_arg(p):
    add_mode_arg(p)
    p.add_argument("--steps", type=number(1, 1000), default=None,
                   help="denoising steps, 1..1000 (default: the mode's; 50 for exact, as the release)")


def add_seed_arg(p, help="random seed"):
    p.add_argument("--seed", type=number(0, MAX_SEED), default=0, help=help)


def add_sampling_args(p):
    add_steps_arg(p)
    p.add_argument("--guidance", type=number(0, 100, integer=False), default=3.0, help="classifier-free guidance scale, 0..100")
    p.add_argument("--eta", type=number(0, 1, integer=False), default=0.5, help="DDIM eta, 0..1 (0 = deterministic; exact mode)")
    add_seed_arg(p)
    p.add_argument("--group", type=number(1), default=8, help="views denoised together by the view modules (max 32)")
    add_view_plan_args(p)


def add_view_plan_args(p):
    p.add_argument("--group-mode", default=None, dest="group_mode", metavar="MODE",
                   help="how more views than one group are denoised: shifted (default: group boundaries move every "
                        "other step, no seams, no extra cost), windows (overlapping windows, averaged), groups (the "
                        "release: independent groups, exact); add +anchors and/or a noise, +freenoise or +mixed, e.g. "
                        "windows+anchors (README: Long orbits)")
    p.add_argument("--overlap", type=number(0), default=None, help="windows: views shared by neighbouring windows (default group/4)")
    p.add_argument("--anchors", type=number(0), default=None, help="anchor views rendered first and attended to by all (default 4 with +anchors)")
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
    p.add_argument("--views", type=number(1, MAX_VIEWS), default=None,
                   help=f"number of views, 1..{MAX_VIEWS} (default 16); with a condition video, frames sampled from it "
                        "(at most its frame count); not used with a condition folder, whose images are all used")
    p.add_argument("--path", default="orbit", help="orbit, nod, spiral, or a JSON file of angles or 25-float EG3D labels")
    p.add_argument("--condition-seed", type=number(0, MAX_SEED), default=0, dest="condition_seed",
                   help="identity drawn by the built-in renderer")


def note_if_mini_on_photo(model: str, images) -> None:
    """One note when the shipped miniature model gets an image `dp3d synth` did not render."""
    from ..data.synth import made_by_synth

    if model == "mini" and not all(made_by_synth(p) for p in images):
        print("note: the mini model knows only the procedural heads of `dp3d synth`; on other images expect a "
              "procedural head, not your subject (real photos need a full-size model, see the README)", file=sys.stderr)
