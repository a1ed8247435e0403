"""DDIM as a plain function of (eps_fn, x, schedule): the released model's exact arithmetic.

- timesteps: "leading" spacing with offset 1 (981, 961, ..., 1 for 50 steps); unlike the LDM
  sampler this works for any step count (theirs crashes for e.g. 3);
- the last step (t = 1) uses alpha_prev = alphas_cumprod[0], not 1;
- sigma_t = eta sqrt((1 - a_prev) / (1 - a_t) (1 - a_t / a_prev)) computed in float64, then float32;
- x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma^2) eps + sigma z, no clipping; with eta > 0
  noise is added at the last step too.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm


@dataclass
class DDIMSchedule:
    """Per-step coefficients in run order (first entry = noisiest step), float32."""

    timesteps: torch.Tensor
    alphas: torch.Tensor
    alphas_prev: torch.Tensor
    sigmas: torch.Tensor
    sqrt_one_minus_alphas: torch.Tensor

    def __len__(self):
        return len(self.timesteps)


def ddim_timesteps(num_steps: int, num_train_timesteps: int = 1000, offset: int = 1) -> np.ndarray:
    if not 1 <= num_steps <= num_train_timesteps:
        raise ValueError(f"num_inference_steps must be in 1..{num_train_timesteps}, got {num_steps}")
    return np.arange(num_steps) * (num_train_timesteps // num_steps) + offset  # ascending


def ddim_schedule(alphas_cumprod: torch.Tensor, num_steps: int, eta: float = 0.0, offset: int = 1) -> DDIMSchedule:
    ts = ddim_timesteps(num_steps, len(alphas_cumprod), offset)
    ac = alphas_cumprod.double().numpy()
    a = alphas_cumprod[torch.from_numpy(ts)].float()
    a_prev = np.array([ac[0]] + ac[ts[:-1]].tolist())
    a64 = a.double().numpy()
    sigmas = eta * np.sqrt((1 - a_prev) / (1 - a64) * (1 - a64 / a_prev))
    # copy: ascontiguousarray keeps the negative stride of a 1-element array (1 step), which torch rejects
    flip = lambda x: torch.as_tensor(np.asarray(x)[::-1].copy())  # noqa: E731  ascending -> run order
    return DDIMSchedule(
        timesteps=flip(ts).long(),
        alphas=flip(a.numpy()).float(),
        alphas_prev=flip(a_prev).float(),
        sigmas=flip(sigmas).float(),
        sqrt_one_minus_alphas=flip(np.sqrt(1.0 - a64)).float(),
    )


def ddim_step(x, eps, k: int, s: DDIMSchedule, noise=None):
    """One update at run-order index k. Returns (x_prev, pred_x0)."""
    a_t, a_prev, sigma, s1m = (v[k].to(x.device, x.dtype) for v in (s.alphas, s.alphas_prev, s.sigmas, s.sqrt_one_minus_alphas))
    pred_x0 = (x - s1m * eps) / a_t.sqrt()
    x_prev = a_prev.sqrt() * pred_x0 + (1.0 - a_prev - sigma**2).sqrt() * eps
    if float(sigma) > 0:
        if noise is None:
            raise ValueError("eta > 0 needs noise for every step")
        x_prev = x_prev + sigma * noise
    return x_prev, pred_x0


def sample_ddim(eps_fn: Callable, x: torch.Tensor, schedule: DDIMSchedule, noise_sampler: Callable | None = None,
                callback: Callable | None = None, disable: bool = False) -> torch.Tensor:
    """Run DDIM from x at schedule.timesteps[0] down to t = 1.

    eps_fn(x, t) -> eps; noise_sampler(k) -> noise like x for step k (replay recorded noise by
    passing `lambda k: recorded[k]`); callback(dict(k, t, x, eps, pred_x0, x_prev)).
    """
    for k in tqdm(range(len(schedule)), disable=disable, desc="denoising"):
        t = schedule.timesteps[k]
        eps = eps_fn(x, t)
        noise = noise_sampler(k) if (noise_sampler is not None and float(schedule.sigmas[k]) > 0) else None
        x_prev, pred_x0 = ddim_step(x, eps, k, schedule, noise)
        if callback is not None:
            callback({"k": k, "t": t, "x": x, "eps": eps, "pred_x0": pred_x0, "x_prev": x_prev})
        x = x_prev
    return x


def gaussian_noise_sampler(shape, generator: torch.Generator | list | None, device, dtype) -> Callable:
    """Seeded per-step noise (diffusers' randn_tensor: a CPU generator also serves a GPU run; a list
    of generators gives each view its own stream)."""
    from diffusers.utils.torch_utils import randn_tensor

    return lambda _k: randn_tensor(tuple(shape), generator=generator, device=torch.device(device), dtype=dtype)
