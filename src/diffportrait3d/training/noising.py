"""The forward process for epsilon-prediction training on the SD1.5 schedule."""

import torch

from ..pipeline.schedule import q_sample, sd15_alphas_cumprod


class Noiser:
    def __init__(self, alphas_cumprod: torch.Tensor | None = None):
        self.alphas_cumprod = sd15_alphas_cumprod() if alphas_cumprod is None else alphas_cumprod

    def __call__(self, z0: torch.Tensor, generator: torch.Generator | list[torch.Generator], group: int = 1):
        """(noisy latents, timesteps, noise); `group` consecutive rows share one timestep, as the
        views of a group do at inference. `generator` may be a list with one generator per group:
        each group's timestep and noise then depend on its own generator only, so a batch split
        into micro-batches or across processes draws exactly what the whole batch draws."""
        b = z0.shape[0] // group
        if isinstance(generator, (list, tuple)):
            if len(generator) != b:
                raise ValueError(f"{len(generator)} generators for {b} groups")
            drawn = [(torch.randint(0, len(self.alphas_cumprod), (1,), generator=g), torch.randn((group, *z0.shape[1:]), generator=g))
                     for g in generator]
            t = torch.cat([d[0] for d in drawn]).repeat_interleave(group)
            noise = torch.cat([d[1] for d in drawn]).to(z0)
        else:
            t = torch.randint(0, len(self.alphas_cumprod), (b,), generator=generator).repeat_interleave(group)
            noise = torch.randn(z0.shape, generator=generator).to(z0)
        return q_sample(z0, noise, self.alphas_cumprod, t.to(z0.device)), t.to(z0.device), noise


def min_snr_weights(alphas_cumprod: torch.Tensor, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-sample loss weights min(SNR, gamma) / SNR for epsilon prediction (Min-SNR, Hang et al.
    2023): the easy low-noise timesteps stop dominating the gradient. gamma <= 0: all ones."""
    if gamma <= 0:
        return torch.ones(t.shape)
    a = alphas_cumprod[t.cpu()].double()
    snr = a / (1 - a)
    return (snr.clamp(max=gamma) / snr).float()
