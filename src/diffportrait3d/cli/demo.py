"""`dp3d demo`: a 16-view turntable of a held-out synthetic head with the shipped miniature model.

The miniature model knows only the procedural heads it was trained on (see docs/miniature.md); real
photos need the full-size model (Stable Diffusion 1.5 + trained or the authors' released weights).
OUT gets turntable.mp4, turntable.gif and contact_sheet.png (replaced if there); other files in it are kept.
"""

from .common import DEFAULT_VIEWS, add_camera_args, add_seed_arg, add_steps_arg, note_if_mini_on_photo

DEMO_IDENTITY = 424242   # never drawn by `dp3d synth` for training (its seeds are 31-bit hashes)
DEMO_CONDITION = 7       # the proxy identity whose renders carry the cameras
OUTPUTS = ("turntable.mp4", "turntable.gif", "contact_sheet.png")


def add_parser(sub, name):
    p = sub.add_parser(name, help="render a demo turntable with the shipped miniature model",
                       description=__doc__)
    p.add_argument("-o", "--output", default="demo_out", help="folder for turntable.mp4, turntable.gif, contact_sheet.png")
    p.add_argument("--reference", default=None, help="reference image (default: a held-out synthetic head)")
    p.add_argument("--model", default="mini", help="model folder, hub id, or 'mini' (shipped)")
    add_steps_arg(p)
    add_seed_arg(p)
    p.add_argument("--device", default="auto")
    add_camera_args(p)
    p.set_defaults(func=run, condition_seed=DEMO_CONDITION)


def run(args):
    import time

    import torch

    from ..atomic import atomic_path
    from ..conditions.cameras import camera_label
    from ..conditions.head import Expression, Identity, build_scene, render_scene
    from ..conditions.sources import load_conditions
    from ..media import grid, open_rgb, save_video
    from ..pipeline.loading import load_pipeline
    from ..preflight import check_output_file, check_output_folder

    t0 = time.perf_counter()
    out = check_output_folder(args.output)
    for name in OUTPUTS:
        check_output_file(out / name)
    if args.reference:
        reference = open_rgb(args.reference)
        note_if_mini_on_photo(args.model, [args.reference])
    pipe = load_pipeline(args.model, args.device)
    size = pipe.image_size
    scene = build_scene(Identity.sample(DEMO_IDENTITY), Expression(smile=0.4))
    if args.reference:
        reference, truth = reference.resize((size, size)), None
    else:
        reference = render_scene(scene, camera_label(0.0, 0.0), size).pil()
    conds, labels = load_conditions("render", args.views or DEFAULT_VIEWS, size, yaw=args.yaw, pitch=args.pitch, path=args.path,
                                    condition_seed=args.condition_seed)
    if not args.reference:
        truth = [render_scene(scene, label, size).pil() for label in labels]
    views = pipe(reference, conds, num_inference_steps=args.steps, proxy_images="auto", condition_labels=labels,
                 generator=torch.Generator().manual_seed(args.seed)).images
    save_video(views, out / "turntable.mp4", fps=8)
    save_video(views, out / "turntable.gif", fps=8)
    rows = [[reference] + [reference.copy() for _ in views[1:]], conds, views] + ([truth] if truth else [])
    with atomic_path(out / "contact_sheet.png") as tmp:
        grid(rows).save(tmp, format="PNG")
    print("rows of contact_sheet.png: reference | condition (cameras) | generated" + (" | ground truth" if truth else ""))
    print(f"wrote {', '.join(str(out / name) for name in OUTPUTS)} in {time.perf_counter() - t0:.1f} s")
