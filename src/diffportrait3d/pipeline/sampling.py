"""The denoising loop as a plain function of (eps_fn, x, scheduler): any diffusers scheduler.

The scheduler owns the update rule (DDIM, DPM-Solver++, UniPC, Euler, ...); this function owns
only the loop, the model-input scaling and the per-step noise, so samplers are swapped by
swapping the scheduler (pipe.scheduler = DPMSolverMultistepScheduler.from_config(...)).
"""

import inspect
from typing import Callable

import torch
from tqdm.auto import tqdm


def denoise(eps_fn: Callable, x: torch.Tensor, scheduler, eta: float = 0.0, generator=None,
            step_noise: torch.Tensor | Callable | None = None, callback: Callable | None = None, disable: bool = True) -> torch.Tensor:
    """Run `scheduler` (after `set_timesteps`) from x at its first timestep down to its last.

    eps_fn(x_in, t) -> the model output for the scaled input x_in. eta: for schedulers that take
    it (DDIM). step_noise: (steps, *x.shape) recorded noise, or step_noise(k) -> step k's noise
    (called in step order), passed as `variance_noise` (DDIM, DPM-Solver SDE); otherwise `generator` draws it. callback(dict(k, t, x, eps, x_prev, pred_x0)).
    """
    params = inspect.signature(scheduler.step).parameters
    if step_noise is not None and "variance_noise" not in params:
        raise ValueError(f"step_noise needs a scheduler that takes variance_noise (e.g. DDIM), not {type(scheduler).__name__}")
    fixed = {"eta": eta} if "eta" in params else {}
    if step_noise is None and "generator" in params:
        fixed["generator"] = generator
    for k, t in enumerate(tqdm(scheduler.timesteps, disable=disable, desc="denoising")):
        eps = eps_fn(scheduler.scale_model_input(x, t), t)
        if step_noise is None:
            kwargs = fixed
        else:
            kwargs = dict(fixed, variance_noise=(step_noise(k) if callable(step_noise) else step_noise[k]).to(x))
        out = scheduler.step(eps, t, x, **kwargs)
        if callback is not None:
            callback({"k": k, "t": t, "x": x, "eps": eps, "x_prev": out.prev_sample,
                      "pred_x0": getattr(out, "pred_original_sample", None)})
        x = out.prev_sample
    return x
