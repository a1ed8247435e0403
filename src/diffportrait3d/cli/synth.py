"""`dp3d synth OUT`: render a multi-view dataset of procedural heads in EG3D's layout."""

from ..data.synth import SynthConfig, synth
from ..head.shading import STYLES


def add_parser(subparsers, name):
    p = subparsers.add_parser(name, help="render a synthetic multi-view portrait dataset (EG3D layout)",
                              description=__doc__)
    p.add_argument("out", help="output folder (re-running on it resumes)")
    p.add_argument("--subjects", type=int, default=100, help="number of identities (default 100)")
    p.add_argument("--frames", type=int, default=1, help="expressions per subject; frame 0 is neutral (default 1)")
    p.add_argument("--views", type=int, default=8, help="cameras per frame (default 8)")
    p.add_argument("--res", type=int, default=64, help="image size in pixels (default 64)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--rig", action="store_true", help="use the same cameras for every subject (an aligned rig)")
    p.add_argument("--conditions", type=int, default=0, metavar="K",
                   help="also render K view-condition images per view (other identities at the same camera) "
                        "under OUT/conditions/, read by training with condition_source=folder (default 0)")
    p.add_argument("--carrier-style", default="colour", choices=STYLES, dest="carrier_style",
                   help="how the condition images are drawn: colour (like the subjects) or clay (shape only: one "
                        "albedo, one light, a flat backdrop; default colour)")
    p.add_argument("--sweep", type=float, default=0.0, metavar="DEG",
                   help="each frame's cameras along a yaw sweep with steps of DEG/3 to DEG degrees, as an orbit's "
                        "neighbouring views (training the view modules); default 0: cameras drawn independently")
    p.add_argument("--workers", type=int, default=1, help="processes to render with (default 1)")
    p.set_defaults(func=run)


def run(args):
    cfg = SynthConfig(subjects=args.subjects, frames=args.frames, views=args.views, res=args.res,
                      seed=args.seed, rig=args.rig, conditions=args.conditions, sweep=args.sweep,
                      carrier_style=args.carrier_style,
                      workers=args.workers)
    path = synth(args.out, cfg)
    print(f"wrote {cfg.subjects * cfg.frames * cfg.views} views of {cfg.subjects} subjects: {path}")
