"""`dp3d demo`: a 16-view turntable of a held-out synthetic head with the shipped miniature model.

The miniature model knows only the procedural heads it was trained on (see docs/miniature.md); real
photos need the full-size model (Stable Diffusion 1.5 + trained or the authors' released weights).
OUT gets turntable.mp4, turntable.gif and contact_sheet.png (replaced if there); other files in it are kept.
"""

from .common import (add_camera_args, add_crop_arg, add_model_args, add_reference_camera_arg, add_sampling_args, note_if_mini_on_photo,
                     say, settings_from_args)

OUTPUTS = ("turntable.mp4", "turntable.gif", "contact_sheet.png")


def add_parser(sub, name):
    p = sub.add_parser(name, help="render a demo turntable with the shipped miniature model",
                       description=__doc__)
    p.add_argument("-o", "--output", default="demo_out", help="folder for turntable.mp4, turntable.gif, contact_sheet.png")
    p.add_argument("--reference", default=None, help="reference image (default: a held-out synthetic head)")
    add_model_args(p, default_model="mini")
    add_crop_arg(p)
    add_reference_camera_arg(p)
    add_sampling_args(p)
    add_camera_args(p)
    p.set_defaults(func=run)


def run(args):
    import time

    from ..app import load_model, render
    from ..app.render import check
    from ..app.samples import sample_reference, sample_truth
    from ..app.settings import DEFAULT_VIEWS
    from ..cameras.trajectories import make_trajectory

    t0 = time.perf_counter()
    settings = settings_from_args(args)
    check(settings, args.output, OUTPUTS)
    if args.reference:
        note_if_mini_on_photo(args.model, [args.reference])
    pipe = load_model(settings)
    size = pipe.image_size
    reference, truth = args.reference, None
    if not args.reference:
        reference = sample_reference(0, size)
        cameras = make_trajectory(settings.yaw, settings.pitch, settings.views or DEFAULT_VIEWS, settings.path)
        truth = sample_truth(cameras.labels, size)
    result = render(settings, [reference], args.output, OUTPUTS, pipe=pipe, truth=truth,
                    say=say if args.reference else None)  # the built-in sample needs no note
    print("rows of contact_sheet.png: reference | condition (cameras) | generated" + (" | ground truth" if truth else ""))
    print(f"wrote {', '.join(str(p) for p in result.files.values())} in {time.perf_counter() - t0:.1f} s")
