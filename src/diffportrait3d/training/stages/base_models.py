"""Miniature-world stand-ins for SD1.5's VAE and UNet, trained on renders (`vae`, `base` stages).

`vae`: an AutoencoderKL trained with L1 + SSIM (weight-free) reconstruction and a small KL term.
`base`: an unconditional UNet2DConditionModel (the same class as SD1.5's) trained with epsilon-MSE
on VAE latents; its text condition is one fixed embedding, stored as the model's empty prompt.
Their output is a base folder (vae/, unet/, prompt_embedding/) that `dp3d init --base` accepts.
"""

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers.utils.torch_utils import randn_tensor

from ...data.eg3d_dataset import PairDataset
from ...errors import UserError
from ...media import tensor_to_pil
from ...models.latent_scale import measure_latent_stats, scale_latents, unscale_latents
from ..datasets import Mapped
from ..losses import SSIMLoss, epsilon_loss, vae_loss
from ..noising import Noiser
from .base import Stage, freeze, generators, register


def images_dataset(cfg, res):
    """Every view once per epoch: {"image", "view"}."""
    return Mapped(PairDataset(cfg.data, res=res, condition_source="none", seed=cfg.seed),
                  lambda it: {"image": it["target"], "view": it["target_view"]})


def preset(name: str) -> dict:
    from ...models.presets import PRESETS

    if name not in PRESETS:
        raise UserError(f"options preset {name!r}: one of {', '.join(PRESETS)}")
    return PRESETS[name]


@dataclass
class VAEOptions:
    preset: str = "tiny"       # models/presets.py: the VAE built when --model has no vae/
    kl_weight: float = 1e-6
    ssim_weight: float = 0.2
    per_channel_latents: bool = True  # export per-channel latents_mean/std (models/latent_scale.py); False: one scaling_factor


@register
class VAEStage(Stage):
    name, Options, needs_model = "vae", VAEOptions, False

    def __init__(self, vae, kl_weight: float = 1e-6, ssim_weight: float = 0.2, per_channel_latents: bool = True):
        super().__init__()
        self.vae, self.kl_weight, self.ssim_weight = vae, kl_weight, ssim_weight
        self.per_channel_latents = per_channel_latents
        self.resolution = vae.config.sample_size
        self.ssim = SSIMLoss()
        self.recent = deque(maxlen=32)  # the last batches seen, to measure the latent scale at export
        vae.train().requires_grad_(True)

    @classmethod
    def build(cls, cfg):
        from diffusers import AutoencoderKL

        o = cls.options(cfg.options)
        model = Path(cfg.model) if cfg.model else None
        vae = AutoencoderKL.from_pretrained(model / "vae") if model and (model / "vae").is_dir() else AutoencoderKL(**preset(o.preset)["vae"])
        return cls(vae, o.kl_weight, o.ssim_weight, o.per_channel_latents)

    def dataset(self, cfg):
        return images_dataset(cfg, cfg.resolution or self.resolution)

    def trained(self):
        return self.vae

    def forward(self, batch):
        self.recent.append(batch["image"].detach().cpu())
        x = batch["image"]
        dist = self.vae.encode(x).latent_dist
        z = dist.mean + dist.std * randn_tensor(dist.mean.shape, generator=generators(batch)).to(x)
        return vae_loss(x, self.vae.decode(z).sample, dist, self.ssim, self.ssim_weight, self.kl_weight)

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


@dataclass
class BaseOptions:
    preset: str = "tiny"  # models/presets.py: the UNet built when --model has no unet/


@register
class BaseUNetStage(Stage):
    name, Options, needs_model = "base", BaseOptions, False  # build() names the missing vae/ itself

    def __init__(self, unet, vae, prompt_embedding, snr_gamma: float = 0.0):
        super().__init__()
        self.unet, self.vae, self.prompt, self.snr_gamma = unet, vae, prompt_embedding, snr_gamma
        self.latent_vae = vae
        freeze(vae, prompt_embedding)
        unet.train().requires_grad_(True)
        self.noiser = Noiser()
        self.resolution = unet.config.sample_size * 2 ** (len(vae.config.block_out_channels) - 1)

    @classmethod
    def build(cls, cfg):
        from diffusers import AutoencoderKL, UNet2DConditionModel

        from ...models.prompt_embedding import PromptEmbedding

        o = cls.options(cfg.options)
        model = Path(cfg.model) if cfg.model else None
        if model is None or not (model / "vae").is_dir():
            raise UserError("stage base needs --model DIR holding a trained vae/ (the output of --stage vae)")
        vae = AutoencoderKL.from_pretrained(model / "vae")
        if (model / "unet").is_dir():
            unet = UNet2DConditionModel.from_pretrained(model / "unet")
            prompt = PromptEmbedding.from_pretrained(model / "prompt_embedding")
        else:
            p = preset(o.preset)
            unet = UNet2DConditionModel(**p["unet"])
            g = torch.Generator().manual_seed(cfg.seed)
            prompt = PromptEmbedding.from_tensor(torch.randn(1, p["prompt_length"], unet.config.cross_attention_dim, generator=g))
        return cls(unet, vae, prompt, snr_gamma=cfg.snr_gamma)

    def dataset(self, cfg):
        return images_dataset(cfg, cfg.resolution or self.resolution)

    def trained(self):
        return self.unet

    def frozen(self):
        return [self.vae, self.prompt]

    def forward(self, batch):
        gens = generators(batch)
        if self.latents is not None:
            z0 = self.latents.sample(batch["view"], gens).to(batch["image"].device)
        else:
            with torch.no_grad():
                z0 = scale_latents(self.vae, self.vae.encode(batch["image"]).latent_dist.sample(gens))
        x_t, t, noise = self.noiser(z0, gens)
        eps = self.unet(x_t, t, encoder_hidden_states=self.prompt(x_t.shape[0]).to(x_t)).sample
        loss = epsilon_loss(eps, noise, self.noiser.alphas_cumprod, t, self.snr_gamma)
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
