"""The forward process for epsilon-prediction training on the SD1.5 schedule."""

import torch

from ..pipeline.schedule import q_sample, sd15_alphas_cumprod


class Noiser:
    def __init__(self, alphas_cumprod: torch.Tensor | None = None, offset: float = 0.0):
        self.alphas_cumprod = sd15_alphas_cumprod() if alphas_cumprod is None else alphas_cumprod
        # offset noise: + offset x one N(0,1) value per row and channel, constant over the image. The spatial
        # mean of white noise on 16x16 latents (std 1/16) is as large as the image's own signal at t = 999, and
        # the miniature model learned to read it as the colour (docs/lab/2026-12-04-take-five.md); a larger random
        # mean, unrelated to the target, teaches it to take colour from the reference instead. 0: plain noise.
        self.offset = offset

    def __call__(self, z0: torch.Tensor, generator: torch.Generator | list[torch.Generator], group: int = 1,
                 timesteps: torch.Tensor | None = None):
        """(noisy latents, timesteps, noise); `timesteps` (one per group) replaces the drawn ones
        (validation at fixed t; the noise is the same either way). `group` consecutive rows share one timestep, as the
        views of a group do at inference. `generator` may be a list with one generator per group:
        each group's timestep and noise then depend on its own generator only, so a batch split
        into micro-batches or across processes draws exactly what the whole batch draws. The offset is drawn
        after everything else and only for drawn timesteps: validation (fixed t) keeps plain noise, comparable
        across runs."""
        b = z0.shape[0] // group
        if isinstance(generator, (list, tuple)):
            if len(generator) != b:
                raise ValueError(f"{len(generator)} generators for {b} groups")
            drawn = [(torch.randint(0, len(self.alphas_cumprod), (1,), generator=g), torch.randn((group, *z0.shape[1:]), generator=g))
                     for g in generator]
            t = torch.cat([d[0] for d in drawn]).repeat_interleave(group)
            noise = torch.cat([d[1] for d in drawn])
            if self.offset and timesteps is None:
                noise = noise + self.offset * torch.cat([torch.randn((group, z0.shape[1], 1, 1), generator=g) for g in generator])
        else:
            t = torch.randint(0, len(self.alphas_cumprod), (b,), generator=generator).repeat_interleave(group)
            noise = torch.randn(z0.shape, generator=generator)
            if self.offset and timesteps is None:
                noise = noise + self.offset * torch.randn((*z0.shape[:2], 1, 1), generator=generator)
        noise = noise.to(z0)
        if timesteps is not None:
            t = torch.as_tensor(timesteps).reshape(-1).long().repeat_interleave(group)
        return q_sample(z0, noise, self.alphas_cumprod, t.to(z0.device)), t.to(z0.device), noise


def min_snr_weights(alphas_cumprod: torch.Tensor, t: torch.Tensor, gamma: float, floor: float = 0.0) -> torch.Tensor:
    """Per-sample loss weights clamp(SNR, floor, gamma) / SNR for epsilon prediction.

    gamma > 0: Min-SNR (Hang et al. 2023), the easy low-noise timesteps stop dominating the gradient.
    floor > 0: below SNR = floor the loss is floor x the x0-space MSE. Epsilon MSE weighs an x0 error
    by SNR, 0.0047 at t = 999: at high noise, where colours and layout are decided, it barely
    rewards reading them from the reference (docs/lab/2026-12-03-take-four.md). 0 / 0: all ones."""
    if gamma <= 0 and floor <= 0:
        return torch.ones(t.shape)
    a = alphas_cumprod[t.cpu()].double()
    snr = a / (1 - a)
    w = snr.clamp(max=gamma) if gamma > 0 else snr
    return (w.clamp(min=floor) / snr).float()
