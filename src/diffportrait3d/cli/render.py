"""`dp3d render`: novel views of a portrait, written as a video or a folder of PNGs."""

from pathlib import Path

from ..errors import UserError
from .common import add_model_args, add_sampling_args


def add_parser(sub, name):
    p = sub.add_parser(name, help="render novel views of a portrait",
                       description="Render one view per condition image (a portrait of anybody seen from the wanted camera). "
                                   "OUT ending in .mp4 or .gif writes a video; otherwise a folder of PNGs and a contact sheet.")
    p.add_argument("references", nargs="+", help="reference portrait image(s) of the person")
    add_model_args(p)
    p.add_argument("--conditions", required=True, help="folder of condition images or a video file")
    p.add_argument("--views", type=int, default=None, help="number of views (frames sampled from a video; default all)")
    p.add_argument("--proxy", default="none", help="folder of proxy renders for the 3D-aware noise, or none")
    p.add_argument("-o", "--output", required=True, help="OUT.mp4, OUT.gif or a folder")
    p.add_argument("--fps", type=int, default=8)
    add_sampling_args(p)
    p.set_defaults(func=run)


def load_condition_images(spec: str, views: int | None):
    from ..media import VIDEO_SUFFIXES, list_images, open_rgb, read_video_frames

    path = Path(spec)
    if not path.exists():
        raise UserError(f"--conditions: not found: {spec}")
    if path.is_dir():
        files = list_images(path)
        if views is not None:
            files = files[:views]
        return [open_rgb(f) for f in files]
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return read_video_frames(path, views)
    raise UserError(f"--conditions must be a folder of images or a video ({', '.join(sorted(VIDEO_SUFFIXES))}), got {spec}")


def write_views(out: str, views, references, conditions, fps: int = 8) -> Path:
    """Video for .mp4/.gif, else a folder of numbered PNGs plus contact_sheet.png; atomic either way."""
    from ..atomic import atomic_path
    from ..media import VIDEO_SUFFIXES, grid, save_video

    out = Path(out)
    if out.suffix.lower() in VIDEO_SUFFIXES:
        return save_video(views, out, fps=fps)
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} exists and is not a folder")
    size = views[0].size
    with atomic_path(out, suffix="") as tmp:
        tmp.mkdir()
        for i, im in enumerate(views):
            im.save(tmp / f"view_{i:03d}.png")
        rows = [[r.resize(size) for r in references], [c.resize(size) for c in conditions], views]
        grid(rows).save(tmp / "contact_sheet.png")
    return out


def run(args):
    import torch

    from ..media import open_rgb
    from ..pipeline.loading import load_pipeline

    refs = [open_rgb(r) for r in args.references]
    conds = load_condition_images(args.conditions, args.views)
    proxies = None
    if args.proxy != "none":
        proxies = load_condition_images(args.proxy, len(conds))
    pipe = load_pipeline(args.model, args.device, args.dtype)
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    views = pipe(refs, conds, num_inference_steps=args.steps, guidance_scale=args.guidance, eta=args.eta,
                 proxy_images=proxies, generator=gen, group_size=args.group).images
    out = write_views(args.output, views, refs, conds, args.fps)
    print(f"wrote {len(views)} views to {out}")
