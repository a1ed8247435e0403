"""Reference (appearance) attention, added to diffusers UNets through attention processors.

The reference UNet runs in "write" mode: every self-attention (attn1) processor records the
tokens that enter it (norm1(x)). The backbone runs in "read" mode: its attn1 keys and values
see [own tokens ; recorded tokens] (paper eq. 4), with its own frozen W_K, W_V; several
references are concatenated along the token axis (eq. 5). Both UNets have the same layout, so
entries are keyed by processor name, never by call order.

Per-call data travels in `cross_attention_kwargs={"reference": ReferenceState(...)}`.
"""

from dataclasses import dataclass, field

import torch
from diffusers.models.attention_processor import AttnProcessor2_0


@dataclass
class ReferenceState:
    """What one UNet call does with reference tokens.

    mode "write": record attn1 inputs into `bank`.
    mode "read": rows [0, rows) of the batch attend to bank tokens too; later rows (the
    unconditional half of a batched CFG call) do plain self-attention. A bank entry's batch is
    1 (shared by every row) or `rows` (one per row).
    """

    mode: str
    bank: dict[str, torch.Tensor] = field(default_factory=dict)
    rows: int | None = None


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
        ref = reference.bank[self.name]
        rows = hidden_states.shape[0] if reference.rows is None else reference.rows
        h = hidden_states[:rows]
        ref = ref.expand(rows, -1, -1) if ref.shape[0] == 1 else ref
        if ref.shape[0] != rows:
            raise ValueError(f"reference bank batch {ref.shape[0]} fits neither 1 nor the {rows} conditional rows")
        out = self._sdpa(attn, h, torch.cat([h, ref.to(h.dtype)], dim=1), None, temb)
        if rows == hidden_states.shape[0]:
            return out
        rest = self._sdpa(attn, hidden_states[rows:], None, None, temb)
        return torch.cat([out, rest], dim=0)


def install_reference_processors(unet) -> None:
    """Give every attention layer of `unet` a ReferenceAttnProcessor (attn2 too: diffusers
    warns about unexpected kwargs otherwise). Call again after anything that resets processors."""
    unet.set_attn_processor({name: ReferenceAttnProcessor(name) for name in unet.attn_processors})


def combine_references(bank: dict[str, torch.Tensor], num_references: int) -> dict[str, torch.Tensor]:
    """(R*B, N, C) entries of R references -> (B, R*N, C): all references side by side (eq. 5)."""
    out = {}
    for name, t in bank.items():
        rb, n, c = t.shape
        b = rb // num_references
        out[name] = t.view(num_references, b, n, c).permute(1, 0, 2, 3).reshape(b, num_references * n, c)
    return out
