"""Miniature-world stand-ins for SD1.5's VAE and UNet, trained on renders (`vae`, `base` stages).

`vae`: an AutoencoderKL trained with L1 + SSIM (weight-free) reconstruction and a small KL term.
`base`: an unconditional UNet2DConditionModel (the same class as SD1.5's) trained with epsilon-MSE
on VAE latents; its text condition is one fixed embedding, stored as the model's empty prompt.
Their output is a base folder (vae/, unet/, prompt_embedding/) that `dp3d init --base` accepts.
"""

from collections import deque

import torch

from ...media import tensor_to_pil
from ..noise3d import SSIMLoss
from ...models.latent_scale import measure_latent_stats, scale_latents, unscale_latents
from ..noising import Noiser, min_snr_weights, weighted_mse
from .base import Stage, freeze


class VAEStage(Stage):
    name, batch_kind = "vae", "images"

    def __init__(self, vae, kl_weight: float = 1e-6, ssim_weight: float = 0.2, per_channel_latents: bool = True):
        self.vae, self.kl_weight, self.ssim_weight = vae, kl_weight, ssim_weight
        self.per_channel_latents = per_channel_latents
        self.resolution = vae.config.sample_size
        self.ssim = SSIMLoss()
        self.recent = deque(maxlen=32)  # the last batches seen, to measure the latent scale at export
        vae.train().requires_grad_(True)

    def trainable(self):
        return self.vae

    def loss(self, batch, generator):
        self.recent.append(batch["image"])
        x = batch["image"].to(self.vae.device)
        dist = self.vae.encode(x).latent_dist
        z = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=generator).to(x)
        rec = self.vae.decode(z).sample
        l1 = (rec - x).abs().mean()
        ss = self.ssim(rec.float(), x.float())
        kl = dist.kl().mean() / z[0].numel()
        loss = l1 + self.ssim_weight * ss + self.kl_weight * kl
        return loss, {"l1": l1.item(), "ssim_loss": ss.item(), "kl": kl.item()}

    @torch.no_grad()
    def samples(self, batch, steps):
        x = batch["image"][:8].to(self.vae.device)
        rec = self.vae.decode(self.vae.encode(x).latent_dist.mean).sample
        return [[tensor_to_pil(a) for a in x], [tensor_to_pil(a) for a in rec]]

    @torch.no_grad()
    def latent_stats(self) -> dict:
        """Latent normalisation measured on recent training images (models/latent_scale.py): SD1.5's
        0.18215 was chosen as 1 / std of its own VAE's latents, so the schedule sees unit variance."""
        z = torch.cat([self.vae.encode(x.to(self.vae.device, self.vae.dtype)).latent_dist.mean.float() for x in self.recent])
        return measure_latent_stats(z, self.per_channel_latents)

    def export(self, folder):
        if self.recent:
            self.vae.register_to_config(**self.latent_stats())
        self.vae.save_pretrained(folder / "vae")


class BaseUNetStage(Stage):
    name, batch_kind = "base", "images"

    def __init__(self, unet, vae, prompt_embedding, snr_gamma: float = 0.0):
        self.unet, self.vae, self.prompt, self.snr_gamma = unet, vae, prompt_embedding, snr_gamma
        self.latent_vae = vae
        freeze(vae, prompt_embedding)
        unet.train().requires_grad_(True)
        self.noiser = Noiser()
        self.resolution = unet.config.sample_size * 2 ** (len(vae.config.block_out_channels) - 1)

    def trainable(self):
        return self.unet

    def frozen(self):
        return [self.vae, self.prompt]

    def loss(self, batch, generator):
        if self.latents is not None:
            z0 = self.latents.sample(batch["view"], generator).to(self.vae.device)
        else:
            with torch.no_grad():
                x = batch["image"].to(self.vae.device)
                z0 = scale_latents(self.vae, self.vae.encode(x).latent_dist.sample(generator))
        x_t, t, noise = self.noiser(z0, generator)
        eps = self.unet(x_t, t, encoder_hidden_states=self.prompt(x_t.shape[0]).to(x_t)).sample
        loss = weighted_mse(eps, noise, min_snr_weights(self.noiser.alphas_cumprod, t, self.snr_gamma))
        return loss, {"loss": loss.item()}

    @torch.no_grad()
    def samples(self, batch, steps):
        from ...pipeline.sampling import denoise
        from ...pipeline.schedule import release_ddim

        g = torch.Generator().manual_seed(0)
        s = self.unet.config.sample_size
        x = torch.randn(8, self.unet.config.in_channels, s, s, generator=g).to(self.vae.device)
        ctx = self.prompt(8).to(x)
        sched = release_ddim()
        sched.set_timesteps(steps)
        z = denoise(lambda x, t: self.unet(x, t, encoder_hidden_states=ctx).sample, x, sched)
        imgs = self.vae.decode(unscale_latents(self.vae, z)).sample.clamp(-1, 1)
        return [[tensor_to_pil(a) for a in batch["image"][:8]], [tensor_to_pil(a) for a in imgs]]

    def export(self, folder):
        self.unet.save_pretrained(folder / "unet")
        self.vae.save_pretrained(folder / "vae")
        self.prompt.save_pretrained(folder / "prompt_embedding")
