"""`dp3d align`: EG3D-framed crops of portraits plus a dataset.json of their estimated cameras."""

from pathlib import Path


def add_parser(sub, name):
    p = sub.add_parser(name, help="align portraits like EG3D's FFHQ crops and estimate their cameras",
                       description="Writes one PNG per photo (named after it) and a dataset.json whose labels are the "
                                   "estimated EG3D cameras: an in-the-wild dataset for dp3d evaluate / train. Needs dlib "
                                   "(pip install 'diffportrait3d[metrics]').")
    p.add_argument("photos", nargs="+", help="portrait images")
    p.add_argument("-o", "--output", required=True, help="new (or empty) folder")
    p.add_argument("--size", type=int, default=512, help="side of the aligned crops in pixels")
    p.set_defaults(func=run)


def run(args):
    import json

    from tqdm.auto import tqdm

    from ..atomic import atomic_path
    from ..errors import UserError
    from ..faces.crop import align_portrait
    from ..media import open_rgb

    out = Path(args.output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"output {out} exists and is not an empty folder; choose a new folder")
    if not 64 <= args.size <= 4096:
        raise UserError(f"--size must be within 64..4096, got {args.size}")
    names = [Path(p).stem + ".png" for p in args.photos]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"several photos would be written as {', '.join(dup)}; rename them so their names differ")
    images = [open_rgb(p) for p in args.photos]  # raises a UserError for missing or unreadable files
    aligned = [align_portrait(im, args.size, p) for im, p in zip(tqdm(images, desc="aligning"), args.photos)]
    with atomic_path(out, suffix="") as tmp:
        tmp.mkdir()
        for name, a in zip(names, aligned):
            a.image.save(tmp / name)
        labels = [[name, [float(v) for v in a.label]] for name, a in zip(names, aligned)]
        (tmp / "dataset.json").write_text(json.dumps({"labels": labels}, indent=1))
    print(f"wrote {len(aligned)} aligned portraits and dataset.json to {out}")
