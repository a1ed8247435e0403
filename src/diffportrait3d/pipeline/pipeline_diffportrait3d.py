"""DiffPortrait3DPipeline: novel views of a portrait from reference image(s) and per-view
condition images (a portrait of any identity seen from each wanted camera).

    >>> pipe = DiffPortrait3DPipeline.from_pretrained("mini")  # or a model folder, or a hub id
    >>> views = pipe("me.jpg", condition_images=[...16 images...], generator=torch.Generator().manual_seed(0)).images
"""

import inspect
from dataclasses import dataclass

import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from ..cameras.eg3d_torch import viewing_angle
from ..head.shading import STYLES
from ..errors import UserError
from ..media import images_to_tensor, tensor_to_pil
from ..models.denoiser import Networks
from ..models.latent_scale import scale_latents, unscale_latents
from ..models.noise3d import NoiseModel3D  # noqa: F401  diffusers loads only imported component modules
from ..models.prompt_embedding import PromptEmbedding  # noqa: F401
from ..models.reference_attention import install_reference_processors
from ..models.reference_position import ReferencePositionBias  # noqa: F401
from ..models.view_modules import ViewModules  # noqa: F401
from .model_folder import resolve_model
from .modes import MODES, SamplingMode
from .noise_mean import ColourPull, canonical_noise_mean, pull_to_reference_mean, reference_pull, with_noise_mean
from .sampling import denoise
from .schedule import alphas_cumprod_from_config, q_sample, use_release_schedule
from .turbo import TurboConfig, check_turbo_steps, require_student, turbo_scheduler
from .view_groups import ViewConditions, grouped_eps
from .view_windows import anchor_indices, anchor_references, fuse, plan_for

NOISE3D_T = 999  # the 3D-aware start: the proxy latent taken by the forward process to t = 999


@dataclass
class DiffPortrait3DOutput(BaseOutput):
    images: list | torch.Tensor  # PIL list, (N,3,H,W) in [0,1], or latents
    latents: torch.Tensor | None = None


class DiffPortrait3DPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "reference_unet->controlnet->unet->vae"
    _optional_components = ["noise_model", "reference_position", "turbo_unet", "turbo_view_modules"]

    def __init__(self, vae, unet, reference_unet, controlnet, view_modules, prompt_embedding, scheduler, noise_model=None,
                 noise_mean: str = "keep", reference_position=None, condition_seed: int | None = None,
                 colour_pull: dict | None = None, turbo_unet=None, turbo_view_modules=None, turbo: dict | None = None,
                 carrier_style: str | None = None):
        super().__init__()
        self.register_modules(vae=vae, unet=unet, reference_unet=reference_unet, controlnet=controlnet,
                              view_modules=view_modules, prompt_embedding=prompt_embedding, scheduler=scheduler,
                              noise_model=noise_model, reference_position=reference_position,
                              turbo_unet=turbo_unet, turbo_view_modules=turbo_view_modules)
        # Sampling defaults tuned on one model live in its model_index.json, so that they follow the model and
        # not the code: noise_mean "keep" (the release) unless a model was made for another (the miniature
        # model, "colour_pull": its 16x16 latents, docs/miniature.md); the colour pull's weights (None: ColourPull's
        # defaults); condition_seed, the identity whose renders carry the cameras best for this model's ControlNet
        # (None: the renderer's default, conditions.sources.RENDERER_CONDITION_SEED); carrier_style, how the renderer
        # draws that carrier: the style the ControlNet was trained on (head/shading.STYLES; None: "colour").
        # A distilled folder's few-step student (pipeline/turbo.py) says how it samples in "turbo".
        ColourPull.from_config(colour_pull)  # a bad entry fails at load, naming the file
        if turbo is not None:
            TurboConfig.from_config(turbo)
        if carrier_style not in (None, *STYLES):
            raise UserError(f'model_index.json: "carrier_style" must be one of {", ".join(STYLES)} or null, got {carrier_style!r}')
        self.register_to_config(noise_mean=canonical_noise_mean(noise_mean), condition_seed=condition_seed,
                                colour_pull=colour_pull, turbo=turbo, carrier_style=carrier_style)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        for m in (vae, unet, reference_unet, controlnet, view_modules, prompt_embedding, noise_model, reference_position,
                  turbo_unet, turbo_view_modules):
            if m is not None:
                m.eval()  # freshly built modules start in training mode, which changes the VAE's numbers
        self.install_processors()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """As diffusers', plus the names `dp3d --model` takes ("mini": the shipped miniature model), and
        a one-line UserError naming the missing file when a local model folder is incomplete."""
        return super().from_pretrained(resolve_model(pretrained_model_name_or_path), **kwargs)

    def install_processors(self):
        """(Re)install reference processors and view-module hooks; call after anything that resets
        attention processors (set_attn_processor, set_default_attn_processor, xformers switches)."""
        install_reference_processors(self.unet)
        install_reference_processors(self.reference_unet)
        self.view_modules.attach(self.unet)
        if self.turbo_unet is not None and self.turbo_view_modules is not None:
            install_reference_processors(self.turbo_unet)
            self.turbo_view_modules.attach(self.turbo_unet)

    @property
    def networks(self) -> Networks:
        return Networks(self.unet, self.reference_unet, self.controlnet, self.view_modules, self.reference_position)

    @property
    def turbo_networks(self) -> Networks:
        """The distilled student's backbone and view modules with the teacher's reference UNet and ControlNet."""
        return Networks(self.turbo_unet, self.reference_unet, self.controlnet, self.turbo_view_modules, self.reference_position)

    @property
    def image_size(self) -> int:
        s = self.unet.config.sample_size
        return (s if isinstance(s, int) else s[0]) * self.vae_scale_factor

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return alphas_cumprod_from_config(self.scheduler.config)

    # -- VAE -------------------------------------------------------------------------------
    def encode(self, images: torch.Tensor, generator=None, sample_posterior: bool = False) -> torch.Tensor:
        """(N,3,H,W) in [-1,1] -> scaled latents. Posterior mean by default; the authors sample it."""
        vae = self.vae
        dist = vae.encode(images.to(vae.device, vae.dtype)).latent_dist
        z = dist.sample(generator) if sample_posterior else dist.mean
        return scale_latents(vae, z)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.vae
        return vae.decode(unscale_latents(vae, latents.to(vae.dtype)), return_dict=False)[0].clamp(-1, 1)

    @torch.no_grad()
    def noise_proxies(self, reference: torch.Tensor, reference_label=None, condition_labels=None) -> torch.Tensor | None:
        """Proxy images I~ from the 3D-aware noise model, or None when it or the cameras are missing."""
        if self.noise_model is None or condition_labels is None:
            return None
        ref_label, labels = _labels(reference_label, condition_labels)
        dev = self.noise_model.device
        return self.noise_model.proxies(reference.to(dev), ref_label[0].to(dev), labels.to(dev)).float().cpu()

    # -- sampling --------------------------------------------------------------------------
    def check_inputs(self, refs, conds, proxies, group_size, guidance_scale, eta, steps, mode):
        if conds.shape[0] == 0:
            raise UserError("no condition images: give one image per wanted view")
        if not 1 <= group_size <= self.view_modules.config.max_views:
            raise UserError(f"--group {group_size} views: the view encoding supports 1..{self.view_modules.config.max_views} views per group")
        if proxies is not None and proxies.shape[0] != conds.shape[0]:
            raise UserError(f"{proxies.shape[0]} proxy images for {conds.shape[0]} condition images: give one proxy per view")
        if eta < 0 or guidance_scale < 0:
            raise UserError("eta and guidance scale must be >= 0")
        if not 1 <= steps <= self.scheduler.config.num_train_timesteps:
            raise UserError(f"--steps {steps}: give 1..{self.scheduler.config.num_train_timesteps} steps")
        if mode.reference_every < 1:
            raise UserError("reference_every must be >= 1")

    @staticmethod
    def sampling_mode(mode) -> SamplingMode:
        if isinstance(mode, SamplingMode):
            return mode
        if mode not in MODES:
            raise UserError(f"--mode {mode!r}: choose from {', '.join(MODES)}")
        return MODES[mode]

    @torch.no_grad()
    def __call__(self, reference_images, condition_images, num_inference_steps: int | None = None, guidance_scale: float = 3.0,
                 eta: float = 0.5, proxy_images="auto", generator: torch.Generator | None = None, output_type: str = "pil",
                 group_size: int = 8, mode: str | SamplingMode = "exact", sample_posterior: bool = False,
                 latents: torch.Tensor | None = None, step_noise=None, control_scale: float = 1.0, callback=None,
                 condition_labels=None, reference_label=None, views=None, noise_mean: str | None = None, return_dict: bool = True):
        """Render one view per condition image.

        reference_images: image / path / list of them / (R,3,H,W) tensor in [-1,1]; all references
            are seen by every view. condition_images: list or (N,3,H,W) tensor, one per view.
        proxy_images: per-view proxy renders for the 3D-aware initial noise; None for Gaussian noise;
            "auto" (default, as `dp3d render`): made by the model's noise_model from the first
            reference, `reference_label` (its EG3D camera, default frontal) and `condition_labels`
            (one EG3D camera per view); Gaussian noise when the model has no noise model or no labels.
        mode: "exact" (default: `self.scheduler`, the release's DDIM unless you swap it, 50 steps),
            "fast" (the recommended fast setting), "turbo" (a distilled folder's student, 4 steps, guidance folded
            in: `guidance_scale` is ignored, and `eta`: its DDIM is deterministic) or another key of
            pipeline.modes.MODES / a SamplingMode.
        num_inference_steps: None = the mode's default. eta: for schedulers that take it (DDIM).
        latents: optional initial latent x_T (N,C,h,w); step_noise: optional (steps, N, C, h, w)
            recorded noise (replays a DDIM run exactly). output_type: "pil", "pt" ([0,1]) or "latent".
        views: which views are denoised together (view_windows.ViewPlan or its name, e.g. "groups"
            for the release's independent groups of `group_size`); None: view_windows.DEFAULT for
            more views than one group. Closed paths are detected from `condition_labels`.
        noise_mean: "keep" (the release) or "remove": every view's noise without its spatial mean, so
            that the 3D-aware proxy, not the noise, sets the global colour; "colour_pull" (old name "reference"):
            as "remove", and every view's clean-latent prediction shifted each step by as much as the views near
            the reference's camera drift from its mean colour (pipeline/noise_mean.py; the weights: the model's
            "colour_pull" config);
            None: the model's default (`pipe.config.noise_mean`, "keep" unless the model folder says otherwise).
        """
        if output_type not in ("pil", "pt", "latent"):
            raise UserError(f"output_type must be 'pil', 'pt' or 'latent', got {output_type!r}")
        mode = self.sampling_mode(mode)
        turbo = require_student(self) if mode.student else None
        noise_mean = canonical_noise_mean(noise_mean or self.config.noise_mean)
        steps = (turbo.steps if turbo else mode.steps) if num_inference_steps is None else num_inference_steps
        if turbo:
            guidance_scale = 1.0  # folded into the student: one backbone batch per step
            eta = 0.0  # a guidance student's DDIM (LCM takes none): 0.5 put SSIM outside exact's spread, 0 did not
            check_turbo_steps(turbo, steps)
        # 1. inputs
        size, device, dtype = self.image_size, self._execution_device, self.unet.dtype
        refs = images_to_tensor(reference_images, size)
        conds = images_to_tensor(condition_images, size)
        auto = isinstance(proxy_images, str) and proxy_images == "auto"
        proxies = images_to_tensor(proxy_images, size) if proxy_images is not None and not auto else None
        self.check_inputs(refs, conds, proxies, group_size, guidance_scale, eta, steps, mode)
        if auto:
            proxies = self.noise_proxies(refs[0], reference_label, condition_labels)
            proxies = images_to_tensor(proxies, size) if proxies is not None else None
        n, n_refs = conds.shape[0], refs.shape[0]
        plan, loop = plan_for(views, group_size, n, condition_labels)
        ref_labels, labels = _labels(reference_label, condition_labels)
        if plan.anchors and n > plan.group_size:  # paper eq. 5: sparse views first, then attended to by all
            refs = anchor_references(self, refs, conds, proxies, condition_labels, plan, loop, generator=generator,
                                     num_inference_steps=steps, guidance_scale=guidance_scale, eta=eta, mode=mode,
                                     sample_posterior=sample_posterior, control_scale=control_scale, reference_label=reference_label,
                                     noise_mean=noise_mean)
            if labels is not None:
                ref_labels = torch.cat([ref_labels, labels[anchor_indices(n, plan.anchors, loop)]])
        if ref_labels is not None and len(ref_labels) != refs.shape[0]:
            ref_labels = None  # references without a camera each: the position bias stays at the same position
        # 2. conditions
        cond = ViewConditions(context=self.prompt_embedding().to(device, dtype),
                              ref_latents=self.encode(refs.to(device), generator, sample_posterior).to(dtype),
                              control_images=conds.to(device, dtype), guidance_scale=guidance_scale,
                              control_scale=control_scale, reference_labels=ref_labels, labels=labels)
        # 3. timesteps: the scheduler steps the loop (the release's DDIM gets the LDM alphas)
        scheduler = turbo_scheduler(self.scheduler.config, turbo) if turbo else mode.scheduler(use_release_schedule(self.scheduler))
        scheduler.set_timesteps(steps, device=device)
        # 4. initial latents: the 3D-aware start when proxies are given, else Gaussian noise
        h = size // self.vae_scale_factor
        shape = (n, self.unet.config.in_channels, h, h)
        prior = with_noise_mean(plan.noise_prior(n, loop, condition_labels), noise_mean)
        if latents is None:
            latents = prior(randn_tensor(shape, generator=generator, device=device, dtype=dtype))  # CPU generators work on GPU too
            if proxies is not None:
                proxy_latents = self.encode(proxies.to(device), generator, sample_posterior).to(dtype)
                latents = q_sample(proxy_latents, latents, self.alphas_cumprod, NOISE3D_T)
            latents = latents * scheduler.init_noise_sigma  # 1 for DDPM-type schedulers; sigma-space ones (Euler) scale up
        elif tuple(latents.shape) != shape:
            raise UserError(f"latents of shape {tuple(latents.shape)} do not fit {n} views at {size}px: expected {shape}")
        latents = latents.to(device, dtype)
        if step_noise is not None:
            step_noise = step_noise.to(device, dtype)
        elif (plan.noise != "independent" or noise_mean != "keep") and "variance_noise" in inspect.signature(scheduler.step).parameters:
            # the plan's noise prior for the per-step noise too (schedulers that take it), drawn step by
            # step: the same numbers as drawing all steps first, without holding steps x views of noise
            def step_noise(k):
                return prior(randn_tensor(shape, generator=generator, device=device, dtype=dtype))

        # 5. denoising: every step, one call computes the guided eps of all views, window by window
        nets, bank, step = self.turbo_networks if turbo else self.networks, None, 0

        def eps_fn(x, t):
            nonlocal bank, step
            if step % mode.reference_every == 0:  # reused in between (fast modes only)
                bank = cond.reference_tokens(nets, t)
            windows = plan.windows(n, step, loop)
            step += 1
            return fuse(lambda w: grouped_eps(nets, x[w], t, cond.select(w), len(w), bank), x, windows)

        if noise_mean == "colour_pull":  # the user's references' mean colour, not the anchors drawn from them
            degrees = None if ref_labels is None else viewing_angle(ref_labels[None, :n_refs], labels).min(dim=1).values
            weights = ColourPull.from_config(self.config.get("colour_pull"))
            eps_fn = pull_to_reference_mean(eps_fn, self.alphas_cumprod, cond.ref_latents[:n_refs].float().mean(dim=(0, 2, 3)),
                                            reference_pull(degrees, weights))
        bar = self.progress_bar(total=len(scheduler.timesteps))
        bar.set_description(f"{n} views, {plan.name}{' (loop)' if loop else ''}, steps")

        def on_step(info):
            bar.update()
            if callback is not None:
                callback(info)

        latents = denoise(eps_fn, latents, scheduler, eta=eta, generator=generator, step_noise=step_noise, callback=on_step)
        bar.close()
        # 6. decode
        if output_type == "latent":
            images = latents
        else:
            images = torch.cat([self.decode(latents[i : i + group_size]) for i in range(0, n, group_size)]).float().cpu()
            images = [tensor_to_pil(x) for x in images] if output_type == "pil" else (images + 1) / 2
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return DiffPortrait3DOutput(images=images, latents=latents)


def _labels(reference_label, condition_labels) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(reference labels (R, 25), view labels (N, 25)) as float32, the reference frontal by default;
    (None, None) without view labels."""
    if condition_labels is None:
        return None, None
    from ..cameras import camera_label

    ref = camera_label(0.0, 0.0) if reference_label is None else reference_label
    return (torch.as_tensor(ref, dtype=torch.float32).reshape(-1, 25),
            torch.as_tensor(condition_labels, dtype=torch.float32).reshape(-1, 25))
