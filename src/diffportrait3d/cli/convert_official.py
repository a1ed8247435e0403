"""`dp3d convert-official`: the authors' released checkpoint -> our model folder."""

import json
import logging
from pathlib import Path

from ..errors import UserError

logger = logging.getLogger(__name__)


def add_parser(sub, name):
    p = sub.add_parser(name, help="convert the authors' released checkpoint (model_state-540000-001.th)",
                       description="Reads .th/.ckpt/.pt (weights only) or .safetensors in the LDM layout. VAE and text "
                                   "encoder come from the checkpoint when present, else from --base.")
    p.add_argument("checkpoint")
    p.add_argument("-o", "--output", required=True, help="model folder to write")
    p.add_argument("--base", default=None, help="Stable Diffusion 1.5 folder or hub id for the VAE / text encoder")
    p.add_argument("--original-config", default=None, help="the authors' model config as JSON (default: the released model's)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.set_defaults(func=run)


def run(args):
    from ..convert.export import convert_to_folder

    cfg = None
    if args.original_config:
        path = Path(args.original_config)
        if not path.is_file():
            raise UserError(f"--original-config not found: {path}")
        try:
            cfg = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise UserError(f"--original-config {path} is not JSON ({e.msg}); convert the authors' yaml to JSON first") from None
        cfg = cfg.get("ldm_config_as_instantiated", cfg)
    report = convert_to_folder(args.checkpoint, args.output, base=args.base, original_config=cfg, dtype=args.dtype)
    print(report.summary())
    print(f"wrote model folder {args.output}")
