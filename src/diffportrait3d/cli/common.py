"""Argument groups shared by several commands."""


def add_model_args(p, default_model=None):
    p.add_argument("--model", default=default_model, required=default_model is None, help="model folder or hub id")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"], help="weights and activations precision")


def add_mode_arg(p):
    from ..pipeline.modes import MODES

    p.add_argument("--mode", default="exact", choices=list(MODES),
                   help="exact: the released model's DDIM sampler; fast: the recommended fast setting (DPM-Solver++ 2M SDE, "
                        "10 steps); the others are measured alternatives (README, Speed)")


def add_sampling_args(p):
    add_mode_arg(p)
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the mode's, 50 for exact as the release)")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale")
    p.add_argument("--eta", type=float, default=0.5, help="DDIM eta (0 = deterministic; exact mode only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--group", type=int, default=8, help="views denoised together by the view modules (max 32)")


def add_camera_args(p):
    p.add_argument("--yaw", default="-40:40", help="yaw range A:B or one value, degrees (positive: camera to the subject's left)")
    p.add_argument("--pitch", default="0", help="pitch range A:B or one value, degrees (positive: camera above)")
    p.add_argument("--views", type=int, default=16, help="number of views (frames sampled from a condition video)")
    p.add_argument("--path", default="orbit", help="orbit, nod, spiral, or a JSON file of angles or 25-float EG3D labels")
    p.add_argument("--condition-seed", type=int, default=0, dest="condition_seed", help="identity drawn by the built-in renderer")
