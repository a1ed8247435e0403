"""Miniature-world stand-ins for SD1.5's VAE and UNet, trained on renders (`vae`, `base` stages).

`vae`: an AutoencoderKL trained with L1 + SSIM (weight-free) reconstruction and a small KL term.
`base`: an unconditional UNet2DConditionModel (the same class as SD1.5's) trained with epsilon-MSE
on VAE latents; its text condition is one fixed embedding, stored as the model's empty prompt.
Their output is a base folder (vae/, unet/, prompt_embedding/) that `dp3d init --base` accepts.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers.utils.torch_utils import randn_tensor

from ...data.eg3d_dataset import PairDataset
from ...errors import UserError
from ...media import tensor_to_pil
from ...models.latent_scale import measure_latent_stats, scale_latents, unscale_latents
from ...models.reference_attention import ReferenceState, install_reference_processors
from ..datasets import Mapped
from ..losses import SSIMLoss, epsilon_loss, vae_loss
from ..noising import Noiser
from .base import Stage, check_option, freeze, generators, register


def images_dataset(cfg, res, references: bool = False, same_view: float = 0.0):
    """Every view once per epoch: {"image", "view"}, and another view of its subject and frame
    ({"reference", "reference_view"}; the view itself for a `same_view` fraction) when `references`."""
    keys = {"target": "image", "target_view": "view"} | ({"reference": "reference", "reference_view": "reference_view"} if references else {})
    return Mapped(PairDataset(cfg.data, res=res, condition_source="none", seed=cfg.seed, same_view=same_view),
                  lambda it: {new: it[old] for old, new in keys.items()})


def preset(name: str) -> dict:
    from ...models.presets import PRESETS

    if name not in PRESETS:
        raise UserError(f"options preset {name!r}: one of {', '.join(PRESETS)}")
    return PRESETS[name]


def random_crops(x: torch.Tensor, size: int, step: int, gens: list[torch.Generator]) -> torch.Tensor:
    """One size x size window per image, its corner on the latent grid (multiples of `step`, so each crop's latent
    pixels are the whole image's), drawn from the sample's own generator."""
    h, w = x.shape[-2:]
    crops = []
    for img, g in zip(x, gens):
        i, j = (int(torch.randint((n - size) // step + 1, (1,), generator=g)) * step for n in (h, w))
        crops.append(img[:, i:i + size, j:j + size])
    return torch.stack(crops)


@dataclass
class VAEOptions:
    preset: str = "tiny"       # models/presets.py: the VAE built when --model has no vae/
    kl_weight: float = 1e-6
    ssim_weight: float = 0.2
    per_channel_latents: bool = True  # export per-channel latents_mean/std (models/latent_scale.py); False: one scaling_factor
    # train on random crops of this many pixels a side (0: whole images): the VAE is convolutional, and a 32 crop of
    # a 64 render costs a quarter of the step (benchmarks/bench_vae_crops.py); the latent scale is still measured
    # on whole images
    crop: int = 0

    def __post_init__(self):
        check_option("crop", self.crop, 0, 4096)


@register
class VAEStage(Stage):
    name, Options, needs_model = "vae", VAEOptions, False

    def __init__(self, vae, kl_weight: float = 1e-6, ssim_weight: float = 0.2, per_channel_latents: bool = True,
                 crop: int = 0):
        super().__init__()
        self.vae, self.kl_weight, self.ssim_weight = vae, kl_weight, ssim_weight
        self.per_channel_latents = per_channel_latents
        self.resolution = vae.config.sample_size
        self.factor = 2 ** (len(vae.config.block_out_channels) - 1)
        if not isinstance(crop, int) or crop % self.factor or crop > self.resolution:
            raise UserError(f"vae option crop must be a multiple of {self.factor} (the latent's pixel) "
                            f"and at most {self.resolution}, got {crop}")
        self.crop = crop
        self.ssim = SSIMLoss()
        self.data = None  # the training images, on which export measures the latent scale
        vae.train().requires_grad_(True)

    @classmethod
    def build(cls, cfg):
        from diffusers import AutoencoderKL

        o = cls.options(cfg.options)
        model = Path(cfg.model) if cfg.model else None
        vae = AutoencoderKL.from_pretrained(model / "vae") if model and (model / "vae").is_dir() else AutoencoderKL(**preset(o.preset)["vae"])
        return cls(vae, o.kl_weight, o.ssim_weight, o.per_channel_latents, o.crop)

    def dataset(self, cfg):
        self.data = images_dataset(cfg, cfg.resolution or self.resolution)
        return self.data

    def trained(self):
        return self.vae

    def forward(self, batch):
        gens = generators(batch)
        x = random_crops(batch["image"], self.crop, self.factor, gens) if self.crop else batch["image"]
        dist = self.vae.encode(x).latent_dist
        z = dist.mean + dist.std * randn_tensor(dist.mean.shape, generator=gens).to(x)
        return vae_loss(x, self.vae.decode(z).sample, dist, self.ssim, self.ssim_weight, self.kl_weight)

    @torch.no_grad()
    def samples(self, batch, steps):
        x = batch["image"][:8].to(self.vae.device)
        rec = self.vae.decode(self.vae.encode(x).latent_dist.mean).sample
        return [[tensor_to_pil(a) for a in x], [tensor_to_pil(a) for a in rec]]

    @torch.no_grad()
    def latent_stats(self, count: int = 512) -> dict:
        """Latent normalisation (models/latent_scale.py) measured on `count` whole training images spread evenly over
        the dataset: the same on any process count and resume point. SD1.5's 0.18215 was chosen as 1 / std of its
        own VAE's latents, so the schedule sees unit variance."""
        index = list(range(0, len(self.data), max(1, len(self.data) // count)))[:count]
        z = []
        for j in range(0, len(index), 16):
            x = torch.stack([self.data[i]["image"] for i in index[j:j + 16]])
            z.append(self.vae.encode(x.to(self.vae.device, self.vae.dtype)).latent_dist.mean.float())
        return measure_latent_stats(torch.cat(z), self.per_channel_latents)

    def export(self, folder):
        if self.data is not None:
            self.vae.register_to_config(**self.latent_stats())
        self.vae.save_pretrained(folder / "vae")


@dataclass
class BaseOptions:
    preset: str = "tiny"  # models/presets.py: the UNet built when --model has no unet/
    # fraction of samples denoised while this same UNet's self-attention also reads another view of the
    # subject (its clean latent through the UNet in write mode, as the reference UNet feeds the backbone):
    # the base learns selective attention that can copy across images, which SD1.5 has and a small
    # base trained unconditionally does not (docs/lab/2026-12-03-take-four.md). 0: plain unconditional training
    reference_prob: float = 0.0
    same_view: float = 0.0  # fraction of those references that are the target view itself (copying first)

    def __post_init__(self):
        check_option("reference_prob", self.reference_prob, 0, 1)
        check_option("same_view", self.same_view, 0, 1)


@register
class BaseUNetStage(Stage):
    name, Options, needs_model = "base", BaseOptions, False  # build() names the missing vae/ itself

    def __init__(self, unet, vae, prompt_embedding, snr_gamma: float = 0.0, snr_floor: float = 0.0, reference_prob: float = 0.0,
                 same_view: float = 0.0, noise_offset: float = 0.0):
        super().__init__()
        self.unet, self.vae, self.prompt, self.snr_gamma, self.snr_floor = unet, vae, prompt_embedding, snr_gamma, snr_floor
        self.reference_prob, self.same_view = reference_prob, same_view
        self.switchable = reference_prob > 0  # validation: every row with a reference vs none
        if reference_prob > 0:
            install_reference_processors(unet)  # plain calls stay stock SDPA attention
        self.latent_vae = vae
        freeze(vae, prompt_embedding)
        unet.train().requires_grad_(True)
        self.noiser = Noiser(offset=noise_offset)
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
        return cls(unet, vae, prompt, snr_gamma=cfg.snr_gamma, snr_floor=cfg.snr_floor, reference_prob=o.reference_prob,
                   same_view=o.same_view, noise_offset=cfg.noise_offset)

    def dataset(self, cfg):
        return images_dataset(cfg, cfg.resolution or self.resolution, references=self.reference_prob > 0, same_view=self.same_view)

    def trained(self):
        return self.unet

    def frozen(self):
        return [self.vae, self.prompt]

    def _latents(self, images, views, gens):
        if self.latents is not None and views is not None:  # validation batches come without view indices
            return self.latents.sample(views, gens).to(images.device)
        with torch.no_grad():
            return scale_latents(self.vae, self.vae.encode(images).latent_dist.sample(gens))

    def forward(self, batch, off: bool | None = None):
        """off=None: each sample reads its reference with probability reference_prob (training);
        False: every sample does; True: none does (the validation pair)."""
        gens = generators(batch)
        z0 = self._latents(batch["image"], batch.get("view"), gens)
        x_t, t, noise = self.noiser(z0, gens, timesteps=batch.get("timestep"))
        ctx = self.prompt(x_t.shape[0]).to(x_t)
        use = torch.zeros(len(gens), dtype=torch.bool)
        if self.reference_prob > 0 and off is not True:  # drawn after the noise: plain runs keep their draws
            use = torch.tensor([off is False or torch.rand((), generator=g).item() < self.reference_prob for g in gens])
        eps = torch.empty_like(x_t)
        if (~use).any():
            eps[~use] = self.unet(x_t[~use], t[~use], encoder_hidden_states=ctx[~use]).sample
        if use.any():
            z_ref = self._latents(batch["reference"][use], batch["reference_view"][use] if "view" in batch else None,
                                  [g for g, u in zip(gens, use) if u])
            write = ReferenceState("write")  # the same UNet records the reference's attn1 inputs (with gradients)
            self.unet(z_ref, t[use], encoder_hidden_states=ctx[use], cross_attention_kwargs={"reference": write})
            read = ReferenceState("read", write.bank, int(use.sum()))
            eps[use] = self.unet(x_t[use], t[use], encoder_hidden_states=ctx[use], cross_attention_kwargs={"reference": read}).sample
        loss = epsilon_loss(eps, noise, self.noiser.alphas_cumprod, t, self.snr_gamma, self.snr_floor)
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
