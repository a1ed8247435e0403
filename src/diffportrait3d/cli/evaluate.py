"""`dp3d evaluate`: LPIPS, DISTS, SSIM, ID, FID, POSE (and PSNR) on reconstruction and novel views."""

from .common import add_model_args, add_sampling_args, settings_from_args


def add_parser(sub, name):
    p = sub.add_parser(name, help="evaluate a model on an EG3D-layout dataset (the paper's table)",
                       description="Writes OUT/report.json, OUT/report.md (paper layout), OUT/figure.png and OUT/cache/ (other files in OUT "
                                   "are kept). Metrics whose "
                                   "weights are missing (see dp3d fetch-weights) are reported as n/a with the reason.")
    add_model_args(p)
    p.add_argument("--data", required=True, help="EG3D-layout dataset folder (e.g. from dp3d synth)")
    p.add_argument("--pairs", type=int, default=16, help="(reference, target) pairs per split")
    p.add_argument("--split", default="both", choices=["recon", "novel", "both"])
    add_sampling_args(p)  # --group-mode etc.: the view schedule of the orbits
    p.add_argument("--proxy", default="auto", choices=["auto", "none"])
    p.add_argument("--reference-camera", default="auto", dest="reference_camera", metavar="auto|YAW,PITCH",
                   help="the cameras the references are given: auto (default), each one's label in the dataset; YAW,PITCH: "
                        "that camera for every reference (e.g. 0,0 measures a render that takes them as frontal)")
    p.add_argument("--orbits", type=int, default=1, help="closed back-and-forth orbits for the orbit metrics (0: none)")
    p.add_argument("--orbit-views", type=int, default=16, dest="orbit_views", help="views per orbit")
    p.add_argument("--weights", default=None, help="folder of metric weights (LPIPS/DISTS/FID)")
    p.add_argument("-o", "--output", required=True, help="report folder")
    p.set_defaults(func=run)


def run(args):
    from ..app.evaluate import EvalConfig, evaluate

    cfg = EvalConfig(data=args.data, output=args.output, settings=settings_from_args(args), pairs=args.pairs, split=args.split,
                     weights=args.weights, orbits=args.orbits, orbit_views=args.orbit_views)
    result = evaluate(cfg)
    print((result["paths"]["md"]).read_text())
    print(f"wrote {', '.join(str(p) for p in result['paths'].values())}")
