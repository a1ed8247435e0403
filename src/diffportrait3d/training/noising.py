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


def min_snr_weights(alphas_cumprod: torch.Tensor, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-sample loss weights min(SNR, gamma) / SNR for epsilon prediction (Min-SNR, Hang et al.
    2023): the easy low-noise timesteps stop dominating the gradient. gamma <= 0: all ones."""
    if gamma <= 0:
        return torch.ones(t.shape)
    a = alphas_cumprod[t.cpu()].double()
    snr = a / (1 - a)
    return (snr.clamp(max=gamma) / snr).float()


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean over samples of weight x per-sample MSE (equals F.mse_loss when all weights are 1)."""
    per_sample = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return (weights.to(per_sample) * per_sample).mean()
