"""A learned same-position bias on the reference tokens of the backbone's read attention.

Why: a UNet's tokens carry almost no position (no positional encoding; only padding), so at high noise a
query at pixel p cannot find the reference's token at p: the read path then returns little more than
the reference's average colour (docs/miniature.md, take five: even with the target itself as the
reference the base's read path left 65-80% of the x0 error). This module adds to the attention logit of
query p and reference token q `gain[layer, head] * exp(-|p - q|^2 / (2 sigma^2))`, positions in units of
the image side, so each head can prefer the reference's token at the same place (reconstruction, small
camera changes) by as much as training finds useful. Own tokens get no bias.

A separate pipeline component, absent from the release (which then runs bitwise as before); trained
with the reference UNet in stage 1 (training/stages/diffportrait3d.py).
"""

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class ReferencePositionBias(ModelMixin, ConfigMixin):
    config_name = "config.json"

    @register_to_config
    def __init__(self, layers: tuple[str, ...] = (), heads: int = 8, sigma: float = 0.04, initial_gain: float = 3.0):
        super().__init__()
        self.gain = nn.Parameter(torch.full((len(layers), heads), float(initial_gain)))
        self._index = {name: i for i, name in enumerate(layers)}
        self._kernels: dict[int, torch.Tensor] = {}

    @classmethod
    def for_unet(cls, unet, sigma: float = 0.04, gain: float = 3.0) -> "ReferencePositionBias":
        """One gain per head of every self-attention layer of `unet` (the backbone that reads)."""
        layers = [n for n in unet.attn_processors if n.endswith("attn1.processor")]
        heads = max(m.heads for n, m in unet.named_modules() if n.endswith("attn1"))
        return cls(layers=tuple(layers), heads=heads, sigma=sigma, initial_gain=gain)

    def kernel(self, n: int) -> torch.Tensor:
        """(n, n) exp(-d^2 / 2 sigma^2) between the tokens of a square grid of n tokens."""
        if n not in self._kernels:
            side = int(round(n**0.5))
            if side * side != n:
                raise ValueError(f"reference position bias needs a square token grid, got {n} tokens")
            i = (torch.arange(side, dtype=torch.float64) + 0.5) / side
            yx = torch.stack(torch.meshgrid(i, i, indexing="ij"), -1).reshape(n, 2)
            self._kernels[n] = torch.exp(-torch.cdist(yx, yx) ** 2 / (2 * self.config.sigma**2)).float()
        return self._kernels[n]

    def bias(self, layer: str, n: int, n_reference: int, heads: int) -> torch.Tensor:
        """Additive attention bias (heads, n, n + n_reference) over [own tokens ; reference tokens] for
        `layer` (a processor name); several references (n_reference = R n) each get the same kernel."""
        if n_reference % n:
            raise ValueError(f"{n_reference} reference tokens are not a whole number of {n}-token grids")
        g = self.gain[self._index[layer], :heads]
        k = self.kernel(n).to(g.device, g.dtype).repeat(1, n_reference // n)
        return torch.cat([torch.zeros(heads, n, n, device=g.device, dtype=g.dtype), g[:, None, None] * k], dim=-1)
