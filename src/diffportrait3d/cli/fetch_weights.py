"""`dp3d fetch-weights DIR`: download the metric networks' weights (LPIPS, DISTS, FID)."""

from ..metrics.fetch import describe, fetch
from ..metrics.weights import REGISTRY


def add_parser(subparsers, name):
    p = subparsers.add_parser(name, help="download the LPIPS / DISTS / FID weight files into a folder (needs internet)",
                              description="Download the weight files the metrics need into DIR (pass it to "
                                          "`dp3d evaluate --weights DIR`). Files already present and valid are kept.")
    p.add_argument("dir", help="weights folder (created if missing)")
    p.add_argument("--only", nargs="+", choices=sorted(REGISTRY), metavar="KEY",
                   help=f"fetch only these files ({', '.join(REGISTRY)})")
    p.add_argument("--force", action="store_true", help="download again even when a valid file is present")
    p.add_argument("--list", action="store_true", help="show the files, their URLs and whether DIR has them; download nothing")
    p.set_defaults(func=run)
    return p


def run(args):
    if args.list:
        print(describe(args.dir))
        return
    for path in fetch(args.dir, keys=args.only, force=args.force):
        print(path)
