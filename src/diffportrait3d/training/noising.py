"""The forward process for epsilon-prediction training on the SD1.5 schedule."""

import torch

from ..pipeline.schedule import q_sample, sd15_alphas_cumprod


class Noiser:
    def __init__(self, alphas_cumprod: torch.Tensor | None = None):
        self.alphas_cumprod = sd15_alphas_cumprod() if alphas_cumprod is None else alphas_cumprod

    def __call__(self, z0: torch.Tensor, generator: torch.Generator, group: int = 1):
        """(noisy latents, timesteps, noise); `group` consecutive rows share one timestep, as the
        views of a group do at inference."""
        b = z0.shape[0] // group
        t = torch.randint(0, len(self.alphas_cumprod), (b,), generator=generator).repeat_interleave(group)
        noise = torch.randn(z0.shape, generator=generator).to(z0)
        return q_sample(z0, noise, self.alphas_cumprod, t.to(z0.device)), t.to(z0.device), noise
