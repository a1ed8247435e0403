"""Stages 1-3 of the paper (section 4): backbone frozen throughout, epsilon-MSE on the target latent.

1 `reference`:   train the reference UNet only (no view control), reference -> target of one subject;
2 `view`:        reference UNet frozen, train the view ControlNet on cross-identity condition images;
3 `consistency`: train only the view modules, on groups of V target views of one subject in random
                 order (the modules must learn cross-view attention, not motion), one shared reference.
"""

import torch

from ...media import tensor_to_pil
from ...models.latent_scale import scale_latents
from ...models.denoiser import backbone_eps, control_residuals, reference_bank
from ...models.reference_attention import ReferenceBank, ReferenceState
from ..noising import Noiser, min_snr_weights, weighted_mse
from .base import Stage, freeze


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


class DiffPortrait3DStage(Stage):
    def __init__(self, name: str, pipe, views: int = 8, gradient_checkpointing: bool = False, snr_gamma: float = 0.0):
        self.name, self.pipe, self.snr_gamma = name, pipe, snr_gamma
        self.latent_vae = pipe.vae
        self.views = views if name == "consistency" else 1
        self.batch_kind = "groups" if name == "consistency" else "pairs"
        self.noiser = Noiser(pipe.alphas_cumprod)
        self.resolution = pipe.image_size
        freeze(pipe.vae, pipe.unet, pipe.reference_unet, pipe.controlnet, pipe.view_modules, pipe.prompt_embedding)
        self.module = {"reference": pipe.reference_unet, "view": pipe.controlnet, "consistency": pipe.view_modules}[name]
        self.module.requires_grad_(True)
        self.module.train()
        if name == "reference":
            unused = set(reference_unet_unused(pipe.reference_unet))
            for n, p in pipe.reference_unet.named_parameters():
                p.requires_grad_(n not in unused)
        if gradient_checkpointing:
            for m in (pipe.unet, pipe.reference_unet, pipe.controlnet):
                m.enable_gradient_checkpointing()

    def trainable(self):
        return self.module

    def frozen(self):
        p = self.pipe
        return [m for m in (p.vae, p.unet, p.reference_unet, p.controlnet, p.view_modules, p.prompt_embedding) if m is not self.module]

    def context(self):
        return self.pipe.view_modules.group(self.views)

    @torch.no_grad()
    def _latents(self, images, views, generator):
        vae = self.pipe.vae
        if self.latents is not None:
            return self.latents.sample(views, generator).flatten(0, views.ndim - 1).to(vae.device, vae.dtype)
        dist = vae.encode(images.to(vae.device, vae.dtype)).latent_dist
        return scale_latents(vae, dist.sample(generator))

    def _flatten(self, batch):
        """(reference (B,3,H,W), targets (B*V,3,H,W), conditions (B*V,3,H,W) or None)."""
        ref = batch["reference"]
        if self.name == "consistency":
            return ref, batch["targets"].flatten(0, 1), batch["conditions"].flatten(0, 1)
        return ref, batch["target"], batch.get("condition")

    def loss(self, batch, generator):
        nets, v = self.pipe.networks, self.views
        ref, target, cond = self._flatten(batch)
        z_ref = self._latents(ref, batch.get("reference_view"), generator)
        z0 = self._latents(target, batch.get("target_views" if self.name == "consistency" else "target_view"), generator)
        x_t, t, noise = self.noiser(z0, generator, group=v)
        ctx = self.pipe.prompt_embedding(x_t.shape[0]).to(x_t)
        with torch.set_grad_enabled(self.name == "reference"):
            # the reference sees the clean latent at the same timestep as the target
            bank = reference_bank(nets, z_ref, t[::v], ctx[: z_ref.shape[0]])
        bank = ReferenceBank({k: b.repeat_interleave(v, dim=0) for k, b in bank.items()})
        res = None
        if self.name != "reference":
            with torch.set_grad_enabled(self.name == "view"):
                res = control_residuals(nets, x_t, t, ctx, cond.to(x_t))
        eps = backbone_eps(nets, x_t, t, ctx, v, ReferenceState("read", bank, x_t.shape[0]), res)
        loss = weighted_mse(eps, noise, min_snr_weights(self.noiser.alphas_cumprod, t, self.snr_gamma))
        return loss, {"loss": loss.item(), "t_mean": t.float().mean().item()}

    @torch.no_grad()
    def samples(self, batch, steps):
        ref, target, cond = self._flatten(batch)
        n = min(self.views * 2 if self.views > 1 else 4, target.shape[0])
        conds = cond[:n] if cond is not None else target[:n]  # reference stage: no control, show targets
        control = 1.0 if self.name != "reference" else 0.0
        g = torch.Generator().manual_seed(0)
        out = self.pipe(ref[:1], conds, num_inference_steps=steps, generator=g, output_type="pt",
                        group_size=self.views, control_scale=control).images
        rows = [[tensor_to_pil(ref[0])] * n, [tensor_to_pil(c) for c in conds], [tensor_to_pil(x) for x in target[:n]],
                [tensor_to_pil(x * 2 - 1) for x in out]]
        return rows

    def export(self, folder):
        self.pipe.save_pretrained(folder)
