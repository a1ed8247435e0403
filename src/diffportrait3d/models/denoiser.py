"""Noise prediction of DiffPortrait3D for one group of views, with classifier-free guidance.

conditional   = backbone + reference attention + view-ControlNet residuals (+ view modules)
unconditional = backbone + view modules only (no reference, no residuals), as the release
eps = eps_u + s * (eps_c - eps_u)

`fast` runs the reference UNet once on the R reference latents and shares its tokens with every
view, runs the ControlNet for the conditional half only, and batches both halves in one backbone
call. `naive` mirrors the authors' code: reference UNet per view, ControlNet twice, two calls. Both
give the same numbers (tests/test_fast_equals_naive.py); naive exists to prove that.
"""

from dataclasses import dataclass

import torch

from .reference_attention import ReferenceState, combine_references


@dataclass
class Networks:
    unet: torch.nn.Module            # frozen backbone, with ReferenceAttnProcessors and view modules attached
    reference_unet: torch.nn.Module  # appearance UNet, with ReferenceAttnProcessors
    controlnet: torch.nn.Module      # view ControlNet (diffusers ControlNetModel)
    view_modules: torch.nn.Module    # ViewModules attached to `unet`


def _rows(t, n: int, device) -> torch.Tensor:
    """Timestep(s) -> one per batch row (a per-view t is repeated for the batched CFG halves)."""
    t = torch.as_tensor(t, device=device).reshape(-1)
    return t.expand(n) if t.numel() == 1 else t.repeat(n // t.numel())


def reference_bank(nets: Networks, ref_latents: torch.Tensor, t, context: torch.Tensor) -> dict:
    """Run the reference UNet on clean latents at timestep t and return its attn1 inputs by name."""
    state = ReferenceState("write")
    n = ref_latents.shape[0]
    nets.reference_unet(ref_latents, _rows(t, n, ref_latents.device), encoder_hidden_states=_ctx(context, n),
                        cross_attention_kwargs={"reference": state}, return_dict=False)
    return state.bank


def control_residuals(nets: Networks, x, t, context, control_image, scale: float = 1.0):
    down, mid = nets.controlnet(x, _rows(t, x.shape[0], x.device), encoder_hidden_states=_ctx(context, x.shape[0]),
                                controlnet_cond=control_image, conditioning_scale=scale, return_dict=False)
    return list(down), mid


def backbone_eps(nets: Networks, x, t, context, num_views: int, reference: ReferenceState | None = None, residuals=None):
    kwargs = {}
    if residuals is not None:
        # both are needed: down residuals alone switch diffusers to T2I-adapter semantics
        kwargs = {"down_block_additional_residuals": residuals[0], "mid_block_additional_residual": residuals[1]}
    with nets.view_modules.group(num_views):
        return nets.unet(x, _rows(t, x.shape[0], x.device), encoder_hidden_states=_ctx(context, x.shape[0]),
                         cross_attention_kwargs={"reference": reference} if reference is not None else None,
                         return_dict=False, **kwargs)[0]


def _ctx(context, n):
    return context.expand(n, -1, -1) if context.shape[0] == 1 else context


def guided_eps(nets: Networks, x, t, context, ref_latents, control_image, guidance_scale: float = 3.0,
               bank: dict | None = None, mode: str = "fast", batch_cfg: bool = True, control_scale: float = 1.0):
    """Guided epsilon for one group x: (V, 4, h, w); ref_latents: (R, 4, h, w) shared by the group.

    `bank`: reference tokens already computed for this timestep (fast mode shares them across
    groups); computed here when None. Returns (eps, eps_cond, eps_uncond).
    """
    v = x.shape[0]
    r = ref_latents.shape[0]
    if mode == "naive":
        # authors' order: reference per view (each reference repeated V times), ControlNet also
        # for the unconditional call (its output unused), two separate backbone calls.
        banks = [reference_bank(nets, ref_latents[i : i + 1].expand(v, -1, -1, -1), t, context) for i in range(r)]
        bank = {k: torch.cat([b[k] for b in banks], dim=1) for k in banks[0]}
        res = control_residuals(nets, x, t, context, control_image, control_scale)
        control_residuals(nets, x, t, context, control_image, control_scale)
        eps_c = backbone_eps(nets, x, t, context, v, ReferenceState("read", bank, v), res)
        eps_u = backbone_eps(nets, x, t, context, v)
    elif mode == "fast":
        if bank is None:
            bank = shared_reference_bank(nets, ref_latents, t, context)
        down, mid = control_residuals(nets, x, t, context, control_image, control_scale)
        if guidance_scale == 1.0:
            eps_c = backbone_eps(nets, x, t, context, v, ReferenceState("read", bank, v), (down, mid))
            return eps_c, eps_c, None
        if batch_cfg:
            pad = [torch.cat([d, torch.zeros_like(d)]) for d in down]
            res = (pad, torch.cat([mid, torch.zeros_like(mid)]))
            both = backbone_eps(nets, torch.cat([x, x]), t, context, v, ReferenceState("read", bank, v), res)
            eps_c, eps_u = both[:v], both[v:]
        else:
            eps_c = backbone_eps(nets, x, t, context, v, ReferenceState("read", bank, v), (down, mid))
            eps_u = backbone_eps(nets, x, t, context, v)
    else:
        raise ValueError(f"mode must be 'fast' or 'naive', got {mode!r}")
    return eps_u + guidance_scale * (eps_c - eps_u), eps_c, eps_u


def shared_reference_bank(nets: Networks, ref_latents, t, context) -> dict:
    """Reference tokens of R references at one timestep, batch 1: shared by every view."""
    t = torch.as_tensor(t).reshape(-1)[:1]
    return combine_references(reference_bank(nets, ref_latents, t, context), ref_latents.shape[0])
