"""`dp3d conditions`: the condition images of a camera path, to preview it or reuse it with --conditions."""

from pathlib import Path

from .common import add_camera_args


def add_parser(sub, name):
    p = sub.add_parser(name, help="write the condition images of a camera path",
                       description="Renders the built-in head at every camera of the path and writes view_NNN.png plus a "
                                   "dataset.json of their EG3D cameras; dp3d render --conditions DIR reuses them.")
    add_camera_args(p)
    p.add_argument("--model", default="mini", help="the model whose carrier identity is drawn when --condition-seed is not "
                                                   "given, in its carrier style (its model_index.json's condition_seed "
                                                   "and carrier_style; only that file is read)")
    p.add_argument("--res", type=int, default=512, help="image side in pixels")
    p.add_argument("-o", "--output", required=True, help="new (or empty) folder")
    p.set_defaults(func=run)


def run(args):
    import json

    from ..atomic import atomic_path
    from ..errors import UserError
    from ..conditions.sources import load_conditions
    from ..pipeline.model_folder import read_model_index

    out = Path(args.output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"output {out} exists and is not an empty folder; choose a new folder")
    if not 8 <= args.res <= 2048:
        raise UserError(f"--res must be within 8..2048, got {args.res}")
    index = read_model_index(args.model)
    seed = index.get("condition_seed") if args.condition_seed is None else args.condition_seed  # None: the renderer's default
    images, labels = load_conditions("render", args.views, args.res, yaw=args.yaw, pitch=args.pitch, path=args.path,
                                     condition_seed=seed, carrier_style=index.get("carrier_style") or "colour")
    with atomic_path(out, suffix="") as tmp:
        tmp.mkdir()
        names = [f"view_{i:03d}.png" for i in range(len(images))]
        for n, im in zip(names, images):
            im.save(tmp / n)
        (tmp / "dataset.json").write_text(json.dumps({"labels": [[n, [float(v) for v in lab]] for n, lab in zip(names, labels)]}))
    print(f"wrote {len(images)} condition images to {out}")
