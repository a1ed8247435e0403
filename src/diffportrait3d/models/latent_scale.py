"""What the diffusion networks see of a VAE latent z: (z - mean) * scaling_factor / std.

SD1.5's VAE stores one number, `scaling_factor` (mean 0, std 1 per channel implied). diffusers'
AutoencoderKL config also carries per-channel `latents_mean` / `latents_std` (SDXL-family VAEs);
when they are set they are used, so a VAE whose channels differ in offset and scale (the miniature
one: channel stds 0.15..1.35 and means up to 1.2 after one global factor) gives every channel the
zero-mean, unit-variance signal the noise schedule assumes. Same formula as diffusers' SDXL pipelines.
"""

import torch


def _channel_stats(vae, like: torch.Tensor):
    mean, std = vae.config.get("latents_mean"), vae.config.get("latents_std")
    if mean is None or std is None:
        return None
    shape = (1, -1) + (1,) * (like.ndim - 2)
    return (torch.tensor(mean, dtype=like.dtype, device=like.device).view(shape),
            torch.tensor(std, dtype=like.dtype, device=like.device).view(shape))


def scale_latents(vae, z: torch.Tensor) -> torch.Tensor:
    """Raw VAE latents (N, C, h, w) -> the diffusion space, as a contiguous tensor: the encoder hands
    out channels-last strides (its mid-block attention's residual sum), and a UNet fed those runs
    other kernels (1e-6 apart), so cached and freshly encoded latents would train differently."""
    stats = _channel_stats(vae, z)
    if stats is None:
        return (z * vae.config.scaling_factor).contiguous()
    return ((z - stats[0]) * vae.config.scaling_factor / stats[1]).contiguous()


def unscale_latents(vae, z: torch.Tensor) -> torch.Tensor:
    """The diffusion space -> raw VAE latents, ready for `vae.decode`."""
    stats = _channel_stats(vae, z)
    if stats is None:
        return z / vae.config.scaling_factor
    return z * stats[1] / vae.config.scaling_factor + stats[0]


@torch.no_grad()
def measure_latent_stats(z: torch.Tensor, per_channel: bool = True) -> dict:
    """Config entries that map latents `z` (N, C, h, w) of training images to zero mean, unit std:
    per channel (`latents_mean`, `latents_std`, scaling_factor 1) or, as SD1.5, one global factor."""
    z = z.float()
    if not per_channel:
        return {"scaling_factor": float(1 / z.std()), "latents_mean": None, "latents_std": None}
    flat = z.transpose(0, 1).flatten(1)
    return {"scaling_factor": 1.0, "latents_mean": flat.mean(1).tolist(), "latents_std": flat.std(1).tolist()}
