"""`dp3d render`: novel views of a portrait, written as a video or a folder of PNGs."""

from pathlib import Path

from ..errors import UserError
from .common import DEFAULT_VIEWS, add_camera_args, add_model_args, add_sampling_args, note_if_mini_on_photo, number


def add_parser(sub, name):
    p = sub.add_parser(name, help="render novel views of a portrait",
                       description="Render one view per camera. Cameras come from --yaw/--pitch/--views/--path, rendered "
                                   "as condition images by the built-in head renderer; or --conditions gives condition "
                                   "images (a portrait of anybody seen from each wanted camera) as a folder or a video. "
                                   "OUT ending in .mp4 or .gif writes a video (replacing a file of that name); otherwise a folder of "
                                   "view_NNN.png and contact_sheet.png (other files in the folder are kept).")
    p.add_argument("references", nargs="+", help="reference portrait image(s) of the person")
    add_model_args(p)
    p.add_argument("--conditions", default="render", help="render (built-in renderer, default), a folder of images, or a video")
    add_camera_args(p)
    p.add_argument("--proxy", default="auto", help="3D-aware initial noise: auto (the model's noise model, when it has one "
                                                   "and the cameras are known), none (Gaussian), or a folder of proxy images")
    p.add_argument("--crop", default="none", choices=["none", "auto"], help="auto: detect the face and frame it as in training")
    p.add_argument("-o", "--output", required=True, help="OUT.mp4, OUT.gif or a folder")
    p.add_argument("--fps", type=number(1, 240), default=8, help="frames per second of a video OUT, 1..240")
    add_sampling_args(p)
    p.set_defaults(func=run)


def write_views(out: str, views, references, conditions, fps: int = 8) -> Path:
    """Video for .mp4/.gif, else numbered PNGs plus contact_sheet.png in a folder; atomic per file."""
    from ..atomic import atomic_folder
    from ..media import VIDEO_SUFFIXES, grid, save_video

    out = Path(out)
    if out.suffix.lower() in VIDEO_SUFFIXES:
        return save_video(views, out, fps=fps)
    size = views[0].size
    with atomic_folder(out) as tmp:
        for i, im in enumerate(views):
            im.save(tmp / f"view_{i:03d}.png")
        rows = [[r.resize(size) for r in references], [c.resize(size) for c in conditions], views]
        grid(rows).save(tmp / "contact_sheet.png")
    return out


def check_output(out: str) -> Path:
    from ..media import VIDEO_SUFFIXES
    from ..preflight import check_output_file, check_output_folder

    return (check_output_file if Path(out).suffix.lower() in VIDEO_SUFFIXES else check_output_folder)(out)


def check_sources(conditions: str, proxy: str, views: int | None) -> None:
    """Condition and proxy sources exist, and --views fits them (instead of being capped silently)."""
    from ..media import VIDEO_SUFFIXES, read_video_frames

    for arg, value, keywords in (("--conditions", conditions, ("render",)), ("--proxy", proxy, ("auto", "none"))):
        if value not in keywords and not Path(value).exists():
            raise UserError(f"{arg} {value}: not found; pass {' or '.join(keywords)}, a folder of images or a video")
    source = Path(conditions)
    if views is None or conditions == "render":
        return
    if source.is_dir():
        raise UserError(f"--views {views}: every image of the condition folder {source} is used (one view each); "
                        "drop --views, or pass a folder holding the views you want")
    if source.suffix.lower() in VIDEO_SUFFIXES and views > (n := len(read_video_frames(source))):
        raise UserError(f"--views {views}: the condition video {source} has only {n} frames; pass --views {n} or fewer")


def run(args):
    check_output(args.output)
    check_sources(args.conditions, args.proxy, args.views)
    refs = load_references(args, args.references)
    note_if_mini_on_photo(args.model, args.references)
    job = load_job(args)
    out, n = render_one(args, job, refs, args.output)
    print(f"wrote {n} views to {out}")


def load_job(args, device=None) -> dict:
    """What every photo of a render shares: the pipeline, condition images, their cameras, proxies."""
    from ..conditions.sources import load_conditions
    from ..pipeline.loading import load_pipeline

    pipe = load_pipeline(args.model, device or args.device, args.dtype)
    size = pipe.image_size
    conds, labels = load_conditions(args.conditions, args.views or DEFAULT_VIEWS, size, yaw=args.yaw, pitch=args.pitch,
                                    path=args.path, condition_seed=args.condition_seed)
    proxies = args.proxy
    if proxies not in ("auto", "none"):
        proxies, _ = load_conditions(proxies, len(conds), size)
    return {"pipe": pipe, "conditions": conds, "labels": labels, "proxies": None if proxies == "none" else proxies}


def load_references(args, paths) -> list:
    from ..conditions.crop import crop_face
    from ..media import open_rgb

    return [crop_face(open_rgb(r), args.crop, r) for r in paths]


def render_one(args, job: dict, refs: list, output) -> tuple[Path, int]:
    """Render the views of one person (reference PIL images) into `output`; (path written, views)."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    views = job["pipe"](refs, job["conditions"], num_inference_steps=args.steps, guidance_scale=args.guidance, eta=args.eta,
                        proxy_images=job["proxies"], condition_labels=job["labels"], generator=gen, group_size=args.group).images
    return write_views(output, views, refs, job["conditions"], args.fps), len(views)
