"""`dp3d init`: a new model folder from a Stable Diffusion 1.5 base or from a preset."""

from ..atomic import atomic_folder
from ..models.presets import PRESETS
from .common import MAX_SEED, number


def add_parser(sub, name):
    p = sub.add_parser(name, help="build a DiffPortrait3D model folder from SD1.5 or a preset",
                       description="Reference UNet and view ControlNet start as copies of the backbone, view modules as identities.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--base", help="Stable Diffusion 1.5 folder (diffusers layout) or hub id")
    src.add_argument("--preset", choices=sorted(PRESETS),
                     help="random weights in a preset's shape: tiny (64x64, for tests) or mini (the miniature world's shape)")
    p.add_argument("-o", "--output", required=True, help="model folder to write (other files in it are kept)")
    p.add_argument("--seed", type=number(0, MAX_SEED), default=0, help="weights seed for presets")
    p.set_defaults(func=run)


def run(args):
    from ..pipeline.build import preset_components, sd15_components
    from ..pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline
    from ..preflight import check_output_folder

    check_output_folder(args.output, need_bytes=0 if args.preset else local_size(args.base, "unet") * 3)
    comps = preset_components(args.preset, args.seed) if args.preset else sd15_components(args.base)
    pipe = DiffPortrait3DPipeline(**comps)
    with atomic_folder(args.output) as tmp:
        pipe.save_pretrained(tmp)
    print(f"wrote model folder {args.output}")


def local_size(folder: str, sub: str) -> int:
    """Bytes of folder/sub when it is a local folder (0 for a hub id): the UNet is written 3 times."""
    from pathlib import Path

    return sum(f.stat().st_size for f in (Path(folder) / sub).rglob("*") if f.is_file())
