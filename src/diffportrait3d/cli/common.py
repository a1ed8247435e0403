"""Argument groups and number types shared by several commands."""

import argparse
import sys

from ..app.settings import CHOICES, DEFAULT_VIEWS, MAX_FPS, MAX_GUIDANCE, MAX_SEED, MAX_STEPS, MAX_VIEWS, RenderSettings
from ..app.reference_camera import HELP as REFERENCE_CAMERA_HELP
from ..pipeline.noise_mean import ALIASES
from ..preflight import describe_range, in_range


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
    p.add_argument("--dtype", default="fp32", choices=CHOICES["dtype"], help="weights and activations precision")


def add_mode_arg(p):
    p.add_argument("--mode", default="exact", choices=CHOICES["mode"],
                   help="exact: the released model's DDIM sampler; fast: the recommended fast setting (UniPC, "
                        "10 steps); turbo: a distilled model's few-step student (made by `dp3d train --stage distill`, "
                        "4 steps, guidance folded in); the others are measured alternatives (README, Speed)")


def add_steps_arg(p):
    add_mode_arg(p)
    p.add_argument("--steps", type=number(1, MAX_STEPS), default=None,
                   help=f"denoising steps, 1..{MAX_STEPS} (default: the mode's; 50 for exact, as the release)")


def add_seed_arg(p, help="random seed"):
    p.add_argument("--seed", type=number(0, MAX_SEED), default=0, help=help)


def add_sampling_args(p):
    add_steps_arg(p)
    p.add_argument("--guidance", type=number(0, MAX_GUIDANCE, integer=False), default=3.0,
                   help=f"classifier-free guidance scale, 0..{MAX_GUIDANCE}")
    p.add_argument("--eta", type=number(0, 1, integer=False), default=0.5, help="DDIM eta, 0..1 (0 = deterministic; exact mode)")
    p.add_argument("--noise-mean", default=None, type=lambda v: ALIASES.get(v, v), choices=CHOICES["noise_mean"],
                   dest="noise_mean",
                   help="default: the model folder's (colour_pull for mini, keep for others); keep: the release's noise; "
                        "remove: each view's noise without its spatial mean, so the 3D-aware proxy sets the colours (steadier "
                        "on small latents: docs/miniature.md); colour_pull (old name: reference): remove, and every view "
                        "shifted back to the reference's mean colour by as much as the views near its camera drift from it "
                        "(the weights: the model folder's)")
    add_seed_arg(p)
    p.add_argument("--group", type=number(1), default=8, help="views denoised together by the view modules (max 32)")
    add_view_plan_args(p)


def add_view_plan_args(p):
    p.add_argument("--group-mode", default=None, dest="group_mode", metavar="MODE",
                   help="how more views than one group are denoised (default shifted+camera): shifted (group boundaries move "
                        "every other step, no extra cost), windows (overlapping windows, averaged), groups (the release: "
                        "independent groups, exact); add +anchors and/or a noise prior over the views: +camera (correlated "
                        "by the angle between cameras), +progressive (by the distance along the path), +mixed, +freenoise; "
                        "=C sets its correlation, e.g. shifted+camera=0.9 (README: Long orbits)")
    p.add_argument("--overlap", type=number(0), default=None, help="windows: views shared by neighbouring windows (default group/4)")
    p.add_argument("--anchors", type=number(0), default=None, help="anchor views rendered first and attended to by all (default 4 with +anchors)")
    p.add_argument("--loop", action=argparse.BooleanOptionalAction, default=None,
                   help="wrap the windows around a closed path (default: detected, first camera ~ last camera)")


def add_crop_arg(p):
    p.add_argument("--crop", default=RenderSettings.crop, choices=CHOICES["crop"],
                   help="auto (default): an image that is already an EG3D-framed square (or under 128 px, or without a "
                        "findable face) is used as is, any other photo is aligned like EG3D's crops (dlib landmarks) and "
                        "its estimated camera feeds the 3D-aware noise; align: always align; none: never (a non-square "
                        "image is centre-cropped, never stretched). One line says what was done")


def add_reference_camera_arg(p):
    p.add_argument("--reference-camera", default="auto", dest="reference_camera", metavar="auto|YAW,PITCH", help=REFERENCE_CAMERA_HELP)


def add_fps_arg(p):
    p.add_argument("--fps", type=number(1, MAX_FPS), default=8, help=f"frames per second of a video, 1..{MAX_FPS}")


def add_camera_args(p):
    p.add_argument("--yaw", default="-40:40", help="yaw range A:B or one value, degrees (positive: camera to the subject's left)")
    p.add_argument("--pitch", default="0", help="pitch range A:B or one value, degrees (positive: camera above)")
    p.add_argument("--views", type=number(1, MAX_VIEWS), default=None,
                   help=f"number of views, 1..{MAX_VIEWS} (default 16); with a condition video, frames sampled from it "
                        "(at most its frame count); not used with a condition folder, whose images are all used")
    p.add_argument("--path", default="orbit", help="orbit, nod, spiral, bounce, or a JSON file of angles or 25-float EG3D labels")
    p.add_argument("--condition-seed", type=number(0, MAX_SEED), default=None, dest="condition_seed",
                   help="identity drawn by the built-in renderer (default: the model folder's, one whose renders its "
                        "ControlNet reads well, benchmarks/bench_carriers.py: 7 for mini; 0 for a folder that names none)")


def say(line: str) -> None:
    """A one-line note for the user (stderr: stdout stays the command's result)."""
    print(line, file=sys.stderr)


def note_if_mini_on_photo(model: str, images) -> None:
    """One note when the shipped miniature model gets an image `dp3d synth` did not render."""
    from ..data.synth import made_by_synth

    if model == "mini" and not all(made_by_synth(p) for p in images):
        print("note: the mini model knows only the procedural heads of `dp3d synth`; on other images expect a "
              "procedural head, not your subject (real photos need a full-size model, see the README)", file=sys.stderr)


def settings_from_args(args, **overrides) -> RenderSettings:
    """The RenderSettings fields a command's arguments name (the rest keep their defaults)."""
    from dataclasses import fields

    values = {f.name: getattr(args, f.name) for f in fields(RenderSettings) if hasattr(args, f.name)}
    return RenderSettings(**{**values, **overrides})
