"""`dp3d init`: a new model folder from a Stable Diffusion 1.5 base or from a preset."""

from ..atomic import atomic_path
from ..errors import UserError


def add_parser(sub, name):
    p = sub.add_parser(name, help="build a DiffPortrait3D model folder from SD1.5 or a preset",
                       description="Reference UNet and view ControlNet start as copies of the backbone, view modules as identities.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--base", help="Stable Diffusion 1.5 folder (diffusers layout) or hub id")
    src.add_argument("--preset", help="random-weight preset: tiny")
    p.add_argument("-o", "--output", required=True, help="model folder to write")
    p.add_argument("--seed", type=int, default=0, help="weights seed for presets")
    p.set_defaults(func=run)


def run(args):
    from ..pipeline.build import preset_components, sd15_components
    from ..pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline

    comps = preset_components(args.preset, args.seed) if args.preset else sd15_components(args.base)
    pipe = DiffPortrait3DPipeline(**comps)
    try:
        with atomic_path(args.output, suffix="") as tmp:
            pipe.save_pretrained(tmp)
    except OSError as e:
        raise UserError(f"cannot write {args.output}: {e.strerror}") from None
    print(f"wrote model folder {args.output}")
