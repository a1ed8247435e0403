"""Stages 1-3 of the paper (section 4): backbone frozen throughout, epsilon-MSE on the target latent.

1 `reference`:   train the reference UNet only (no view control), reference -> target of one subject;
2 `view`:        reference UNet frozen, train the view ControlNet on cross-identity condition images;
3 `consistency`: train only the view modules, on groups of V target views of one subject, one shared
                 reference: in random order, or (option `ordered`) neighbouring views in yaw order, an orbit's.
"""

from dataclasses import dataclass

import torch
from torch import nn

from ...conditions.sources import model_carrier_style
from ...data.eg3d_dataset import PairDataset, ViewGroupDataset
from ...errors import UserError
from ...head.shading import STYLES
from ...media import tensor_to_pil
from ...models.denoiser import backbone_eps, control_residuals, reference_bank
from ...models.latent_scale import scale_latents
from ...models.reference_attention import ReferenceBank, ReferenceState
from ...models.reference_position import ReferencePositionBias
from ..datasets import Mapped, tensors_only
from ..condition_jitter import jitter_conditions
from ..losses import epsilon_loss
from ..noising import Noiser
from .base import Stage, check_flag, check_option, freeze, generators, register


def reference_unet_unused(unet) -> list[str]:
    """Reference-UNet parameters that cannot influence any recorded attention input, left out of the
    optimiser: everything after the input of the LAST self-attention layer (that transformer block's
    attn1, norm2, attn2, norm3, ff, its Transformer2DModel's proj_out, a trailing upsampler) and the
    output head (conv_norm_out, conv_out). tests/test_training.py checks this list against autograd."""
    bi = max(i for i, b in enumerate(unet.up_blocks) if getattr(b, "attentions", None))
    block = unet.up_blocks[bi]
    ai = len(block.attentions) - 1
    prefix = f"up_blocks.{bi}.attentions.{ai}."
    last = len(block.attentions[ai].transformer_blocks) - 1
    names = [f"{prefix}transformer_blocks.{last}.{s}." for s in ("attn1", "norm2", "attn2", "norm3", "ff")] + [f"{prefix}proj_out."]
    names += [f"up_blocks.{bi}.upsamplers."] + [f"up_blocks.{j}." for j in range(bi + 1, len(unet.up_blocks))]
    names += ["conv_norm_out.", "conv_out."]
    return [n for n, _ in unet.named_parameters() if n.startswith(tuple(names))]


@dataclass
class PairOptions:
    same_view: float = 0.0  # fraction of pairs whose reference is the target itself (reconstruction pairs)

    def __post_init__(self):
        check_option("same_view", self.same_view, 0, 1)


@dataclass
class ReferenceOptions(PairOptions):
    position_gain: float = 0.0  # > 0: give a model without one a ReferencePositionBias starting at this gain
    position_sigma: float = 0.04  # its kernel width, in units of the image side
    position_lr: float = 5e-3  # its gains' learning rate (a few units of logit must be reachable in a run)
    position_moved_degrees: float = 0.0  # > 0: a second gain per head for moved cameras, blended over this angle
    train_unet: bool = True  # false: the reference UNet stays as it is, only the position bias trains
    control: bool = False  # true: the (frozen) view ControlNet gives the target's camera while the reference trains

    def __post_init__(self):
        super().__post_init__()
        check_option("position_gain", self.position_gain, 0)
        check_option("position_sigma", self.position_sigma, 0, lo_open=True)
        check_option("position_lr", self.position_lr, 0, lo_open=True)
        check_option("position_moved_degrees", self.position_moved_degrees, 0)
        for name in ("train_unet", "control"):
            check_flag(name, getattr(self, name))


@dataclass
class ViewOptions(PairOptions):
    condition_jitter: float = 0.0  # 0-1: the carriers' colours drawn anew per sample (training/condition_jitter.py)
    carrier_style: str = "colour"  # how carriers are drawn (head/shading.STYLES); saved in the model for sampling

    def __post_init__(self):
        super().__post_init__()
        check_option("condition_jitter", self.condition_jitter, 0, 1)
        if self.carrier_style not in STYLES:
            raise UserError(f"option carrier_style must be one of {', '.join(STYLES)}, got {self.carrier_style!r}")


@dataclass
class GroupOptions:
    ordered: bool = False  # true: groups are views neighbouring in yaw, in yaw order (an orbit's), else random

    def __post_init__(self):
        check_flag("ordered", self.ordered)


class DiffPortrait3DStage(Stage):
    """One of stages 1-3: subclasses say which network trains and whether view control runs.

    `forward(batch, off=True)` is the same step with the trained module switched off (reference
    stage: no reference tokens; view stage: no ControlNet residuals; consistency: view modules
    detached): the validation baseline that shows what the module has learned (training/validation.py).
    """

    Options, switchable = PairOptions, True
    off_fixed = True    # off drops the one trained module; the rest is frozen (tests/test_validation.py)
    grouped = False     # samples are groups of `views` target views (stage 3); else single targets
    control = True      # the view ControlNet runs (stages 2, 3)

    def __init__(self, pipe, views: int = 8, gradient_checkpointing: bool = False, snr_gamma: float = 0.0,
                 snr_floor: float = 0.0, options: PairOptions | None = None, noise_offset: float = 0.0):
        super().__init__()
        self.pipe, self.snr_gamma, self.snr_floor, self.opts = pipe, snr_gamma, snr_floor, options or self.Options()
        # registered here so that DDP/FSDP/DeepSpeed wrap every network the step runs
        self.unet, self.reference_unet, self.controlnet = pipe.unet, pipe.reference_unet, pipe.controlnet
        self.view_modules, self.vae, self.prompt_embedding = pipe.view_modules, pipe.vae, pipe.prompt_embedding
        self.position = pipe.reference_position
        # the appearance module: the reference UNet, plus the read path's position bias where the model has one
        self.reference = (self.reference_unet if self.position is None
                          else nn.ModuleDict({"unet": self.reference_unet, "position": self.position}))
        self.latent_vae = pipe.vae
        self.views = views if self.grouped else 1
        self.noiser = Noiser(pipe.alphas_cumprod, offset=noise_offset)
        self.resolution = pipe.image_size
        freeze(pipe.vae, pipe.unet, self.reference, pipe.controlnet, pipe.view_modules, pipe.prompt_embedding)
        self.trained().requires_grad_(True)
        self.trained().train()
        if gradient_checkpointing:
            for m in (pipe.unet, pipe.reference_unet, pipe.controlnet):
                m.enable_gradient_checkpointing()

    @classmethod
    def build(cls, cfg):
        from ...pipeline.loading import load_pipeline

        return cls(load_pipeline(cfg.model, device="cpu"), views=cfg.views, gradient_checkpointing=cfg.gradient_checkpointing,
                   snr_gamma=cfg.snr_gamma, snr_floor=cfg.snr_floor, options=cls.options(cfg.options), noise_offset=cfg.noise_offset)

    def dataset(self, cfg):
        # carriers drawn as the ControlNet reads them: the model's style (the view stage: the one it trains on)
        style = model_carrier_style(self.pipe)
        if self.grouped:
            return Mapped(ViewGroupDataset(cfg.data, views=self.views, res=cfg.resolution or self.resolution,
                                           condition_source=cfg.condition_source, seed=cfg.seed, ordered=self.opts.ordered,
                                           carrier_style=style), tensors_only)
        # stage 1 has no view control: condition images for it would be wasted time
        source = cfg.condition_source if self.control else "none"
        return Mapped(PairDataset(cfg.data, res=cfg.resolution or self.resolution, condition_source=source, seed=cfg.seed,
                                  same_view=self.opts.same_view, carrier_style=style), tensors_only)

    def frozen(self):
        return [m for m in (self.vae, self.unet, self.reference, self.controlnet, self.view_modules, self.prompt_embedding)
                if m is not self.trained()]

    def context(self):
        return self.view_modules.group(self.views)

    @torch.no_grad()
    def _latents(self, images, views, gens):
        """Scaled latents, one row per image; `gens` one generator per row."""
        if self.latents is not None and views is not None:  # validation batches come without view indices
            return self.latents.sample(views, gens).flatten(0, views.ndim - 1).to(images.device, self.vae.dtype)
        return scale_latents(self.vae, self.vae.encode(images.to(self.vae.dtype)).latent_dist.sample(gens))

    def _flatten(self, batch):
        """(reference (B,3,H,W), ref views (B,), targets (B*V,3,H,W), target views, conditions (B*V,3,H,W) or None)."""
        if self.grouped:
            return (batch["reference"], batch.get("reference_view"), batch["targets"].flatten(0, 1), batch.get("target_views"),
                    batch["conditions"].flatten(0, 1))
        return batch["reference"], batch.get("reference_view"), batch["target"], batch.get("target_view"), batch.get("condition")

    def _read(self, bank: ReferenceBank, rows: int, batch) -> ReferenceState:
        """The backbone's read of one reference bank per group, each group's entry repeated for its `views` rows."""
        v = self.views
        return ReferenceState("read", ReferenceBank({k: b.repeat_interleave(v, dim=0) for k, b in bank.items()}), rows,
                              self.position, self._cameras(batch))

    def _cameras(self, batch):
        """(reference labels (rows, 1, 25), target labels (rows, 25)) for the position bias, or None."""
        ref, target = batch.get("reference_label"), batch.get("target_labels", batch.get("target_label"))
        if self.position is None or ref is None or target is None:
            return None
        target = target.reshape(-1, 25)
        return ref.repeat_interleave(target.shape[0] // ref.shape[0], dim=0)[:, None], target

    def forward(self, batch, off: bool = False):
        nets, v = self.pipe.networks, self.views
        ref, ref_views, target, target_views, cond = self._flatten(batch)
        z_ref = self._latents(ref, ref_views, generators(batch))
        z0 = self._latents(target, target_views, generators(batch, v))
        x_t, t, noise = self.noiser(z0, generators(batch), group=v, timesteps=batch.get("timestep"))
        jitter = getattr(self.opts, "condition_jitter", 0.0)
        if jitter and cond is not None and "timestep" not in batch:  # validation (fixed t) reads the carriers as they are
            cond = jitter_conditions(cond, batch["seed"].repeat_interleave(v).tolist(), jitter)
        ctx = self.prompt_embedding(x_t.shape[0]).to(x_t)
        read = None
        if not (off and self.trained() is self.reference):
            with torch.set_grad_enabled(self.trained() is self.reference):
                # the reference sees the clean latent at the same timestep as the target
                bank = reference_bank(nets, z_ref, t[::v], ctx[: z_ref.shape[0]])
            read = self._read(bank, x_t.shape[0], batch)
        res = None
        if self.control and not (off and self.trained() is self.controlnet):
            with torch.set_grad_enabled(self.trained() is self.controlnet):
                res = control_residuals(nets, x_t, t, ctx, cond.to(x_t))
        modules_off = off and self.trained() is self.view_modules
        if modules_off:
            self.view_modules.detach()
        try:
            eps = backbone_eps(nets, x_t, t, ctx, v, read, res)
        finally:
            if modules_off:
                self.view_modules.attach(self.unet)
        loss = epsilon_loss(eps, noise, self.noiser.alphas_cumprod, t, self.snr_gamma, self.snr_floor)
        return loss, {"loss": loss.item(), "t_mean": t.float().mean().item()}

    @torch.no_grad()
    def samples(self, batch, steps):
        ref, _, target, _, cond = self._flatten(batch)
        n = min(self.views * 2 if self.views > 1 else 4, target.shape[0])
        conds = cond[:n] if cond is not None else target[:n]  # reference stage: no control, show targets
        g = torch.Generator().manual_seed(0)
        out = self.pipe(ref[:1], conds, num_inference_steps=steps, generator=g, output_type="pt",
                        group_size=self.views, control_scale=1.0 if self.control else 0.0).images
        return [[tensor_to_pil(ref[0])] * n, [tensor_to_pil(c) for c in conds], [tensor_to_pil(x) for x in target[:n]],
                [tensor_to_pil(x * 2 - 1) for x in out]]

    def export(self, folder):
        self.pipe.save_pretrained(folder)


@register
class ReferenceStage(DiffPortrait3DStage):
    """Stage 1: the reference UNet, without view control."""

    name, control, Options = "reference", False, ReferenceOptions

    def __init__(self, pipe, options: ReferenceOptions | None = None, **kw):
        options = options or ReferenceOptions()
        if options.position_gain > 0 and pipe.reference_position is None:
            position = ReferencePositionBias.for_unet(pipe.unet, options.position_sigma, options.position_gain)
            pipe.register_modules(reference_position=position)
        moved = options.position_moved_degrees
        if moved > 0 and pipe.reference_position is not None and pipe.reference_position.config.moved_degrees != moved:
            pipe.register_modules(reference_position=pipe.reference_position.with_moved_gains(moved))
        super().__init__(pipe, options=options, **kw)
        # with the camera known, moved pairs need not hedge: the reference can give what the target shows
        self.control = options.control
        unused = set(reference_unet_unused(pipe.reference_unet))
        for n, p in pipe.reference_unet.named_parameters():
            p.requires_grad_(n not in unused and options.train_unet)

    def trained(self):
        return self.reference

    def param_groups(self):
        if self.position is None:
            return super().param_groups()
        unet = [p for p in self.reference_unet.parameters() if p.requires_grad]
        position = {"params": list(self.position.parameters()), "lr": self.opts.position_lr}
        return ([{"params": unet}] if unet else []) + [position]


@register
class ViewStage(DiffPortrait3DStage):
    """Stage 2: the view ControlNet, on cross-identity condition images."""

    name, Options = "view", ViewOptions

    def __init__(self, pipe, options: ViewOptions | None = None, **kw):
        super().__init__(pipe, options=options, **kw)
        pipe.register_to_config(carrier_style=self.opts.carrier_style)  # exported with the model, read at sampling

    def trained(self):
        return self.controlnet


@register
class ConsistencyStage(DiffPortrait3DStage):
    """Stage 3: the view modules, on groups of `views` target views of one subject (GroupOptions: in which order)."""

    name, grouped, Options = "consistency", True, GroupOptions

    def trained(self):
        return self.view_modules

