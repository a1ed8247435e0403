"""`dp3d evaluate`: LPIPS, DISTS, SSIM, ID, FID, POSE (and PSNR) on reconstruction and novel views."""

from .common import add_model_args


def add_parser(sub, name):
    p = sub.add_parser(name, help="evaluate a model on an EG3D-layout dataset (the paper's table)",
                       description="Writes OUT/report.json, OUT/report.md (paper layout), OUT/figure.png and OUT/cache/ (other files in OUT "
                                   "are kept). Metrics whose "
                                   "weights are missing (see dp3d fetch-weights) are reported as n/a with the reason.")
    add_model_args(p)
    p.add_argument("--data", required=True, help="EG3D-layout dataset folder (e.g. from dp3d synth)")
    p.add_argument("--pairs", type=int, default=16, help="(reference, target) pairs per split")
    p.add_argument("--split", default="both", choices=["recon", "novel", "both"])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--eta", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--proxy", default="auto", choices=["auto", "none"])
    p.add_argument("--orbits", type=int, default=1, help="closed back-and-forth orbits for the orbit metrics (0: none)")
    p.add_argument("--orbit-views", type=int, default=16, dest="orbit_views", help="views per orbit")
    p.add_argument("--group", type=int, default=8, help="views denoised together by the view modules")
    p.add_argument("--group-mode", default=None, dest="group_mode", metavar="MODE", help="view schedule of the orbits (see dp3d render)")
    p.add_argument("--weights", default=None, help="folder of metric weights (LPIPS/DISTS/FID)")
    p.add_argument("-o", "--output", required=True, help="report folder")
    p.set_defaults(func=run)


def run(args):
    from ..evaluation import EvalConfig, evaluate

    cfg = EvalConfig(model=args.model, data=args.data, output=args.output, pairs=args.pairs, split=args.split, steps=args.steps,
                     guidance=args.guidance, eta=args.eta, seed=args.seed, proxy=args.proxy, weights=args.weights,
                     orbits=args.orbits, orbit_views=args.orbit_views, group=args.group, group_mode=args.group_mode,
                     device=args.device, dtype=args.dtype)
    result = evaluate(cfg)
    print((result["paths"]["md"]).read_text())
    print(f"wrote {', '.join(str(p) for p in result['paths'].values())}")
