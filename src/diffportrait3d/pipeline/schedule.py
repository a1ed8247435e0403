"""The one home of the schedule arithmetic: the SD1.5 noise schedule as the LDM code computes it,
the forward process, and the release's DDIM as a configured diffusers DDIMScheduler.

diffusers' `scaled_linear` computes the betas in float32, which differs from the released
model's schedule by up to 4.8e-7 in 986 of 1000 entries; we keep the LDM numbers.

The release's DDIM (50 steps, eta 0.5) is diffusers' DDIMScheduler with "leading" spacing,
steps_offset 1 and set_alpha_to_one False (the last step, at t = 1, uses alpha_prev =
alphas_cumprod[0]), once `use_release_schedule` has given it the LDM alphas. It stores them in
float64 so that sigma_t = eta sqrt((1 - a_prev) / (1 - a_t) (1 - a_t / a_prev)) is computed in
float64 as the release does (tests/test_reference_vectors.py checks every coefficient and step).
"""

import numpy as np
import torch
from diffusers import DDIMScheduler

from ..models.presets import SCHEDULER


def sd15_alphas_cumprod(beta_start: float = 0.00085, beta_end: float = 0.012, num_train_timesteps: int = 1000) -> torch.Tensor:
    betas = np.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=np.float64) ** 2
    return torch.from_numpy(np.cumprod(1.0 - betas)).float()


def alphas_cumprod_from_config(config) -> torch.Tensor:
    """alphas_cumprod for a diffusers scheduler config (scaled_linear or linear betas)."""
    get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
    kind = get("beta_schedule", "scaled_linear")
    start, end, n = get("beta_start", 0.00085), get("beta_end", 0.012), get("num_train_timesteps", 1000)
    if get("trained_betas", None) is not None:
        raise ValueError("schedulers with trained_betas are not supported: use beta_schedule 'scaled_linear' or 'linear'")
    if kind == "scaled_linear":
        return sd15_alphas_cumprod(start, end, n)
    if kind == "linear":
        betas = np.linspace(start, end, n, dtype=np.float64)
        return torch.from_numpy(np.cumprod(1.0 - betas)).float()
    raise ValueError(f"unsupported beta_schedule {kind!r}: use 'scaled_linear' (SD1.5) or 'linear'")


def q_sample(x0: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor, t) -> torch.Tensor:
    """Forward process: sqrt(a_t) x0 + sqrt(1 - a_t) noise; t: one timestep or one per row of x0
    (the 3D-aware start uses t = 999; training draws one per row)."""
    a = alphas_cumprod.to(x0.device)[torch.as_tensor(t, device=x0.device)].to(x0.dtype)
    a = a.view(-1, *[1] * (x0.ndim - 1)) if a.ndim else a
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def use_release_schedule(scheduler):
    """Give a DDIMScheduler the LDM alphas (float64 storage of the release's float32 values), so it
    steps exactly as the release; any other scheduler is returned unchanged (its own arithmetic)."""
    if type(scheduler) is DDIMScheduler and scheduler.alphas_cumprod.dtype != torch.float64:
        ac = alphas_cumprod_from_config(scheduler.config).double()
        scheduler.alphas_cumprod = ac
        scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64) if scheduler.config.set_alpha_to_one else ac[0]
    return scheduler


def release_ddim() -> DDIMScheduler:
    return use_release_schedule(DDIMScheduler(**SCHEDULER))
