"""Reference (appearance) attention, added to diffusers UNets through attention processors.

The reference UNet runs in "write" mode: every self-attention (attn1) processor records the
tokens that enter it (norm1(x)). The backbone runs in "read" mode: its attn1 keys and values
see [own tokens ; recorded tokens] (paper eq. 4), with its own frozen W_K, W_V; several
references are concatenated along the token axis (eq. 5). Both UNets have the same layout, so
entries are keyed by processor name, never by call order.

W_K, W_V act token by token, so K = [W_K h ; W_K h_ref]: the recorded tokens are projected once
per bank and layer (`ReferenceBank.keys_values`) and shared by every view that reads them, where
the release projects them again for each view.

Per-call data travels in `cross_attention_kwargs={"reference": ReferenceState(...)}`.
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import AttnProcessor2_0


class ReferenceBank(dict):
    """Recorded reference tokens by processor name, (B, N, C) each (B = 1: shared by every view),
    plus their keys and values under the reading UNet's W_K, W_V, projected on first use."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.projected: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def keys_values(self, name: str, attn) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in self.projected:
            tokens = self[name].to(attn.to_k.weight.dtype)
            self.projected[name] = (attn.to_k(tokens), attn.to_v(tokens))
        return self.projected[name]


@dataclass
class ReferenceState:
    """What one UNet call does with reference tokens.

    mode "write": record attn1 inputs into `bank`.
    mode "read": rows [0, rows) of the batch attend to bank tokens too; later rows (the
    unconditional half of a batched CFG call) do plain self-attention. A bank entry's batch is
    1 (shared by every row) or `rows` (one per row). `position`: the model's ReferencePositionBias
    (models/reference_position.py), or None (the release: no bias). `cameras`: (reference labels
    (rows or 1, R, 25), labels of the `rows` views (rows, 25)) to centre that bias where each view's
    tokens lie in the reference; None: at the same position.
    """

    mode: str
    bank: ReferenceBank = field(default_factory=ReferenceBank)
    rows: int | None = None
    position: torch.nn.Module | None = None
    cameras: tuple[torch.Tensor, torch.Tensor] | None = None


def _attend_with_reference(attn, h: torch.Tensor, k_ref: torch.Tensor, v_ref: torch.Tensor, bias=None) -> torch.Tensor:
    """attn1 of tokens h (B, N, C) over keys/values [h ; reference], as AttnProcessor2_0 computes it;
    `bias`: an additive (heads or B, heads, N, N + N_ref) logit bias or None."""
    if attn.spatial_norm is not None or attn.group_norm is not None or attn.residual_connection or h.ndim != 3:
        raise ValueError("reference attention supports Stable Diffusion-style self-attention layers only")
    b = h.shape[0]
    k = torch.cat([attn.to_k(h), k_ref.expand(b, -1, -1)], dim=1)
    v = torch.cat([attn.to_v(h), v_ref.expand(b, -1, -1)], dim=1)
    d = k.shape[-1] // attn.heads
    q, k, v = (x.view(b, -1, attn.heads, d).transpose(1, 2) for x in (attn.to_q(h), k, v))  # (B, heads, N, d)
    if attn.norm_q is not None:
        q, k = attn.norm_q(q), attn.norm_k(k)
    mask = None if bias is None else bias.to(q.dtype).expand(b, -1, -1, -1)  # 4-D: CPU SDPA keeps its fused kernel (3-D: 4x slower)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(b, -1, attn.heads * d)
    return attn.to_out[1](attn.to_out[0](out)) / attn.rescale_output_factor


class ReferenceAttnProcessor:
    """Stock SDPA attention plus reference write/read on self-attention layers."""

    def __init__(self, name: str):
        self.name = name
        self.self_attention = name.endswith("attn1.processor")
        self._sdpa = AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, reference: ReferenceState | None = None):
        if reference is None or not self.self_attention:
            return self._sdpa(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if reference.mode == "write":
            reference.bank[self.name] = hidden_states
            return self._sdpa(attn, hidden_states, None, attention_mask, temb)
        if reference.mode != "read":
            raise ValueError(f"unknown reference mode {reference.mode!r}")
        k_ref, v_ref = reference.bank.keys_values(self.name, attn)
        rows = hidden_states.shape[0] if reference.rows is None else reference.rows
        if k_ref.shape[0] not in (1, rows):
            raise ValueError(f"reference bank batch {k_ref.shape[0]} fits neither 1 nor the {rows} conditional rows")
        bias = None
        if reference.position is not None:
            bias = reference.position.bias(self.name, hidden_states.shape[1], k_ref.shape[1], attn.heads,
                                           reference.cameras)
        out = _attend_with_reference(attn, hidden_states[:rows], k_ref, v_ref, bias)
        if rows == hidden_states.shape[0]:
            return out
        rest = self._sdpa(attn, hidden_states[rows:], None, None, temb)
        return torch.cat([out, rest], dim=0)


def install_reference_processors(unet) -> None:
    """Give every attention layer of `unet` a ReferenceAttnProcessor (attn2 too: diffusers
    warns about unexpected kwargs otherwise). Call again after anything that resets processors."""
    unet.set_attn_processor({name: ReferenceAttnProcessor(name) for name in unet.attn_processors})


def combine_references(bank: dict[str, torch.Tensor], num_references: int) -> ReferenceBank:
    """(R*B, N, C) entries of R references -> (B, R*N, C): all references side by side (eq. 5)."""
    out = ReferenceBank()
    for name, t in bank.items():
        rb, n, c = t.shape
        b = rb // num_references
        out[name] = t.view(num_references, b, n, c).permute(1, 0, 2, 3).reshape(b, num_references * n, c)
    return out
