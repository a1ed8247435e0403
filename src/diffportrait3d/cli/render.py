"""`dp3d render`: novel views of a portrait, written as a video or a folder of PNGs."""

from .common import (add_camera_args, add_crop_arg, add_fps_arg, add_model_args, add_reference_camera_arg, add_sampling_args,
                     note_if_mini_on_photo, say, settings_from_args)


def add_parser(sub, name):
    p = sub.add_parser(name, help="render novel views of a portrait",
                       description="Render one view per camera. Cameras come from --yaw/--pitch/--views/--path, rendered "
                                   "as condition images by the built-in head renderer; or --conditions gives condition "
                                   "images (a portrait of anybody seen from each wanted camera) as a folder or a video. "
                                   "OUT ending in .mp4 or .gif writes a video (replacing a file of that name); otherwise a folder of "
                                   "view_NNN.png and contact_sheet.png (other files in the folder are kept). --lift then "
                                   "fits a 3D head to the views, as `dp3d lift` does with its defaults.")
    p.add_argument("references", nargs="+", help="reference portrait image(s) of the person")
    add_model_args(p)
    p.add_argument("--conditions", default="render", help="render (built-in renderer, default), a folder of images, or a "
                                                          "video (for each camera, the frame whose head pose is nearest)")
    add_camera_args(p)
    p.add_argument("--proxy", default="auto", help="3D-aware initial noise: auto (the model's noise model, when it has one "
                                                   "and the cameras are known), none (Gaussian), or a folder of proxy images")
    add_crop_arg(p)
    add_reference_camera_arg(p)
    p.add_argument("-o", "--output", required=True, help="OUT.mp4, OUT.gif or a folder")
    add_fps_arg(p)
    p.add_argument("--lift", action="store_true",
                   help="also fit 3D Gaussians to the views and write head.ply (3D Gaussian Splatting) and head.glb "
                        "(mesh) into the output folder, or OUT.ply and OUT.glb beside a video; needs known cameras "
                        "and two or more views (for other fit settings run `dp3d lift` on a folder output)")
    add_sampling_args(p)
    p.set_defaults(func=run)


def run(args):
    from ..app import render
    from ..app.lift import LiftSettings, summary
    from ..app.render import check

    settings = settings_from_args(args)
    lift = LiftSettings() if args.lift else None
    check(settings, args.output, lift=lift)  # before the note, so a bad option is the only line printed
    note_if_mini_on_photo(args.model, args.references)
    result = render(settings, args.references, args.output, lift=lift, say=say)
    print(f"wrote {len(result.views)} views to {args.output}")
    if result.lift is not None:
        print(summary(result.lift))
