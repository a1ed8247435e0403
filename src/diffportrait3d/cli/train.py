"""`dp3d train`: one stage of training (see training/config.py for every option)."""

from pathlib import Path

from ..errors import UserError

STAGES_HELP = "vae, base, reference, view, consistency, noise3d"  # the registry (training/stages/) is checked at run time


def add_parser(sub, name):
    p = sub.add_parser(name, help=f"train one stage ({STAGES_HELP})",
                       description="Stages: vae and base (the miniature world's stand-ins for SD1.5's VAE and UNet), "
                                   "reference (paper stage 1), view (stage 2), consistency (stage 3), noise3d (the 3D-aware "
                                   "noise model). OUT gets checkpoints/, logs/, samples/ and model/; other files in it are "
                                   "kept. Several GPUs or nodes (DDP, FSDP, DeepSpeed): `accelerate launch [--config_file "
                                   "configs/accelerate/ddp.yaml] -m diffportrait3d.cli.main train ...`; --batch-size is per process.")
    p.add_argument("--config", default=None, help="YAML or JSON file of TrainConfig fields")
    p.add_argument("--stage", default=None, help=f"one of {STAGES_HELP} (default reference)")
    p.add_argument("--data", default=None, help="EG3D-layout dataset folder")
    p.add_argument("--model", default=None, help="model folder to start from")
    p.add_argument("-o", "--output", default=None, help="training folder OUT (default train_out)")
    p.add_argument("--max-steps", type=int, default=None, dest="max_steps")
    p.add_argument("--batch-size", type=int, default=None, dest="batch_size")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUT/checkpoints")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config field")
    p.set_defaults(func=run)


def run(args):
    from accelerate import PartialState

    from ..training.config import load_config, parse_override
    from ..training.loop import train
    from ..training.stages import build_stage

    overrides = {k: getattr(args, k) for k in ("stage", "data", "model", "output", "max_steps", "batch_size", "lr")}
    overrides.update(dict(parse_override(s) for s in args.set))
    cfg = load_config(args.config, overrides)
    if not Path(cfg.data).is_dir():
        raise UserError(f"--data {cfg.data}: folder not found; pass an EG3D-layout dataset (e.g. from `dp3d synth`)")
    check_output(cfg.output, args.resume)
    if cfg.latent_cache:
        from ..preflight import check_output_folder

        check_output_folder(cfg.latent_cache, "--set latent_cache")
    stage = build_stage(cfg)
    dataset = stage.dataset(cfg)
    if len(dataset) == 0:
        raise UserError(f"no usable training samples in {cfg.data}")
    result = train(cfg, stage, dataset, resume=args.resume)
    if PartialState().is_main_process:  # under accelerate launch: one line, not one per process
        loss = "no steps left to run" if result["final_loss"] is None else f"final loss {result['final_loss']:.4f}"  # resumed at max_steps
        print(f"trained {cfg.stage} to step {result['step']} ({loss}); model folder {cfg.output}/model")


def check_output(output: str, resume: bool) -> None:
    """OUT writable, and no earlier run's checkpoints overwritten by a fresh start."""
    from ..preflight import check_output_folder
    from ..training.checkpoint import list_checkpoints

    out = check_output_folder(output)
    done = list_checkpoints(out / "checkpoints")
    if done and not resume:
        raise UserError(f"-o {out} holds checkpoints of an earlier run (last: {done[-1].name}); pass --resume to "
                        "continue it, or choose a new -o")
