"""Argument groups shared by several commands."""


def add_model_args(p, default_model=None):
    p.add_argument("--model", default=default_model, required=default_model is None, help="model folder or hub id")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"], help="weights and activations precision")


def add_sampling_args(p):
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (the release uses 50)")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale")
    p.add_argument("--eta", type=float, default=0.5, help="DDIM eta (0 = deterministic)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--group", type=int, default=8, help="views denoised together by the view modules (max 32)")
