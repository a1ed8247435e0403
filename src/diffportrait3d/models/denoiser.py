"""Noise prediction of DiffPortrait3D for one group of views, with classifier-free guidance.

conditional   = backbone + reference attention + view-ControlNet residuals (+ view modules)
unconditional = backbone + view modules only (no reference, no residuals), as the release
eps = eps_u + s * (eps_c - eps_u)

`guided_eps` runs the reference UNet once on the R reference latents and shares its tokens (and
their keys and values) with every view, runs the ControlNet for the conditional half only, and
batches both halves in one backbone call. `naive_guided_eps` mirrors the authors' code: reference
UNet per view, ControlNet twice, two calls. Both give the same numbers (tests/test_denoiser.py);
the naive one exists to prove that and as the benchmarks' baseline.
"""

from dataclasses import dataclass

import torch

from .reference_attention import ReferenceBank, ReferenceState, combine_references


@dataclass
class Networks:
    unet: torch.nn.Module            # frozen backbone, with ReferenceAttnProcessors and view modules attached
    reference_unet: torch.nn.Module  # appearance UNet, with ReferenceAttnProcessors
    controlnet: torch.nn.Module      # view ControlNet (diffusers ControlNetModel)
    view_modules: torch.nn.Module    # ViewModules attached to `unet`
    position: torch.nn.Module | None = None  # ReferencePositionBias of the read path, or None (the release)


def _rows(t, n: int, device) -> torch.Tensor:
    """Timestep(s) -> one per batch row (a per-view t is repeated for the batched CFG halves)."""
    t = torch.as_tensor(t, device=device).reshape(-1)
    return t.expand(n) if t.numel() == 1 else t.repeat(n // t.numel())


def _ctx(context, n):
    return context.expand(n, -1, -1) if context.shape[0] == 1 else context


def reference_bank(nets: Networks, ref_latents: torch.Tensor, t, context: torch.Tensor) -> ReferenceBank:
    """Run the reference UNet on clean latents at timestep t and return its attn1 inputs by name."""
    state = ReferenceState("write")
    n = ref_latents.shape[0]
    nets.reference_unet(ref_latents, _rows(t, n, ref_latents.device), encoder_hidden_states=_ctx(context, n),
                        cross_attention_kwargs={"reference": state}, return_dict=False)
    return state.bank


def shared_reference_bank(nets: Networks, ref_latents, t, context) -> ReferenceBank:
    """Reference tokens of R references at one timestep, batch 1: shared by every view."""
    t = torch.as_tensor(t).reshape(-1)[:1]
    return combine_references(reference_bank(nets, ref_latents, t, context), ref_latents.shape[0])


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


def guided_eps(nets: Networks, x, t, context, ref_latents, control_image, guidance_scale: float = 3.0,
               bank: ReferenceBank | None = None, control_scale: float = 1.0, batch_cfg: bool = True, cameras=None):
    """Guided epsilon for one group x: (V, C, h, w); ref_latents: (R, C, h, w) shared by the group.

    `bank`: reference tokens already computed for this timestep (shared across groups, and its
    projected keys/values with them); computed here when None. `batch_cfg=False` runs the two
    halves as two backbone calls (same numbers; kept for tests). `cameras`: (reference labels (1, R, 25),
    the group's labels (V, 25)) for a camera-aware position bias (ReferenceState), or None.
    Returns (eps, eps_cond, eps_uncond).
    """
    v = x.shape[0]
    if bank is None:
        bank = shared_reference_bank(nets, ref_latents, t, context)
    down, mid = control_residuals(nets, x, t, context, control_image, control_scale)
    read = ReferenceState("read", bank, v, nets.position, cameras)
    if guidance_scale == 1.0:
        eps_c = backbone_eps(nets, x, t, context, v, read, (down, mid))
        return eps_c, eps_c, None
    if batch_cfg:
        res = ([torch.cat([d, torch.zeros_like(d)]) for d in down], torch.cat([mid, torch.zeros_like(mid)]))
        both = backbone_eps(nets, torch.cat([x, x]), t, context, v, read, res)
        eps_c, eps_u = both[:v], both[v:]
    else:
        eps_c = backbone_eps(nets, x, t, context, v, read, (down, mid))
        eps_u = backbone_eps(nets, x, t, context, v)
    return eps_u + guidance_scale * (eps_c - eps_u), eps_c, eps_u


def naive_guided_eps(nets: Networks, x, t, context, ref_latents, control_image, guidance_scale: float = 3.0,
                     control_scale: float = 1.0, cameras=None):
    """The authors' order: reference UNet per view (each reference repeated V times, its tokens
    projected per view), ControlNet also for the unconditional call (output unused), two backbone calls."""
    v, r = x.shape[0], ref_latents.shape[0]
    banks = [reference_bank(nets, ref_latents[i : i + 1].expand(v, -1, -1, -1), t, context) for i in range(r)]
    bank = ReferenceBank({k: torch.cat([b[k] for b in banks], dim=1) for k in banks[0]})
    res = control_residuals(nets, x, t, context, control_image, control_scale)
    control_residuals(nets, x, t, context, control_image, control_scale)
    eps_c = backbone_eps(nets, x, t, context, v, ReferenceState("read", bank, v, nets.position, cameras), res)
    eps_u = backbone_eps(nets, x, t, context, v)
    return eps_u + guidance_scale * (eps_c - eps_u), eps_c, eps_u
