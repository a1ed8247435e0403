"""A learned same-position bias on the reference tokens of the backbone's read attention.

Why: a UNet's tokens carry almost no position (no positional encoding; only padding), so at high noise a
query at pixel p cannot find the reference's token at p: the read path then returns little more than
the reference's average colour (docs/lab/2026-12-04-take-five.md: even with the target itself as the
reference the base's read path left 65-80% of the x0 error). This module adds to the attention logit of
query p and reference token q `gain[layer, head] * exp(-|p - q|^2 / (2 sigma^2))`, positions in units of
the image side, so each head can prefer the reference's token at the same place (reconstruction, small
camera changes) by as much as training finds useful. Own tokens get no bias. Where the cameras are known
(the pipeline's reference and view labels, the training pairs' labels) the kernel is centred where the
query's surface point lies in the reference instead (proxy_warp.py: a proxy sphere), zero where that point
is hidden from it; at the reference's own camera that is the same kernel. With `moved_degrees` > 0 each head
has a second gain for moved cameras, blended by the angle theta between the two cameras' viewing directions:
gain(theta) = moved_gain + (gain - moved_gain) exp(-theta^2 / 2 moved_degrees^2), because copying the reference
in place pays at its own camera (reconstruction) while the warp is only approximate once the camera moves
(docs/lab/2026-12-05-take-seven.md, -take-eight.md, -take-nine.md).

A separate pipeline component, absent from the release (which then runs bitwise as before); trained
with the reference UNet in stage 1 (training/stages/diffportrait3d.py).
"""

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..cameras.eg3d_torch import viewing_angle
from .proxy_warp import CENTRE, RADIUS, token_warp


class ReferencePositionBias(ModelMixin, ConfigMixin):
    config_name = "config.json"

    @register_to_config
    def __init__(self, layers: tuple[str, ...] = (), heads: int = 8, sigma: float = 0.04, initial_gain: float = 3.0,
                 moved_degrees: float = 0.0, proxy_centre: tuple[float, float, float] = CENTRE, proxy_radius: float = RADIUS):
        # proxy_centre, proxy_radius: the sphere standing for the head in the warp (proxy_warp.py), fitted to the
        # heads a model is trained on; in the config, so that a model trained on other heads brings its own
        super().__init__()
        self.gain = nn.Parameter(torch.full((len(layers), heads), float(initial_gain)))
        self.moved_gain = nn.Parameter(self.gain.detach().clone()) if moved_degrees > 0 else None
        self._index = {name: i for i, name in enumerate(layers)}
        self._kernels: dict[int, torch.Tensor] = {}
        self._warp_cache: dict[tuple, torch.Tensor] = {}

    @classmethod
    def for_unet(cls, unet, sigma: float = 0.04, gain: float = 3.0) -> "ReferencePositionBias":
        """One gain per head of every self-attention layer of `unet` (the backbone that reads)."""
        layers = [n for n in unet.attn_processors if n.endswith("attn1.processor")]
        heads = max(m.heads for n, m in unet.named_modules() if n.endswith("attn1"))
        return cls(layers=tuple(layers), heads=heads, sigma=sigma, initial_gain=gain)

    def with_moved_gains(self, degrees: float) -> "ReferencePositionBias":
        """A copy with a moved-camera gain per head (starting equal to the same-camera gain), blended over `degrees`."""
        config = {k: v for k, v in self.config.items() if not k.startswith("_")}
        out = ReferencePositionBias(**{**config, "moved_degrees": degrees})
        with torch.no_grad():
            out.gain.copy_(self.gain)
            out.moved_gain.copy_(self.moved_gain if self.moved_gain is not None else self.gain)
        return out.to(self.gain.device)

    def same_camera_weight(self, cameras) -> torch.Tensor:
        """(B, R): exp(-theta^2 / 2 moved_degrees^2), theta the angle between each view's and each reference's
        viewing direction (the cameras' +z axes)."""
        theta = viewing_angle(*cameras)
        return torch.exp(-(theta**2) / (2 * self.config.moved_degrees**2)).float()

    @staticmethod
    def _grid(side: int) -> torch.Tensor:
        """(side*side, 2) token centres as (row, column) in units of the image side."""
        i = (torch.arange(side, dtype=torch.float64) + 0.5) / side
        return torch.stack(torch.meshgrid(i, i, indexing="ij"), -1).reshape(-1, 2)

    @staticmethod
    def _side(n: int) -> int:
        side = int(round(n**0.5))
        if side * side != n:
            raise ValueError(f"reference position bias needs a square token grid, got {n} tokens")
        return side

    def kernel(self, n: int) -> torch.Tensor:
        """(n, n) exp(-d^2 / 2 sigma^2) between the tokens of a square grid of n tokens."""
        if n not in self._kernels:
            yx = self._grid(self._side(n))
            self._kernels[n] = torch.exp(-torch.cdist(yx, yx) ** 2 / (2 * self.config.sigma**2)).float()
        return self._kernels[n]

    def warped_kernel(self, n: int, cameras) -> torch.Tensor:
        """(B, n, R n): the kernel centred where each target token lies in each reference (proxy_warp.py),
        zero where that point is hidden from the reference. cameras: (reference labels (B or 1, R, 25),
        target labels (B, 25)); the same camera gives `kernel(n)` exactly."""
        reference_labels, target_labels = cameras
        uv, visible = token_warp(reference_labels, target_labels, self._side(n), tuple(self.config.proxy_centre),
                                 float(self.config.proxy_radius))  # (B, R, n, 2), (B, R, n)
        b, r = visible.shape[:2]
        yx = self._grid(self._side(n)).to(uv)
        d2 = torch.cdist(uv.flip(-1).flatten(0, 1), yx) ** 2  # (B R, n, n); uv is (column, row)
        k = torch.exp(-d2 / (2 * self.config.sigma**2)).view(b, r, n, n) * visible[..., None]
        return k.permute(0, 2, 1, 3).reshape(b, n, r * n)

    def bias(self, layer: str, n: int, n_reference: int, heads: int, cameras=None) -> torch.Tensor:
        """Additive attention bias over [own tokens ; reference tokens] for `layer` (a processor name):
        (heads, n, n + n_reference) without cameras (same-position kernel; several references,
        n_reference = R n, each get it), (B, heads, n, n + n_reference) with `cameras` (warped_kernel)."""
        if n_reference % n:
            raise ValueError(f"{n_reference} reference tokens are not a whole number of {n}-token grids")
        g = self.gain[self._index[layer], :heads]
        if cameras is None:
            k = self.kernel(n).to(g.device, g.dtype).repeat(1, n_reference // n)
            return torch.cat([torch.zeros(heads, n, n, device=g.device, dtype=g.dtype), g[:, None, None] * k], dim=-1)
        k = self._cached("kernel", n, cameras).to(g.device, g.dtype)  # (B, n, R n)
        b = k.shape[0]
        own = torch.zeros(b, heads, n, n, device=g.device, dtype=g.dtype)
        if self.moved_gain is None:
            return torch.cat([own, g[None, :, None, None] * k[:, None]], dim=-1)
        moved = self.moved_gain[self._index[layer], :heads]
        w = self._cached("weights", 0, cameras).to(g.device, g.dtype)  # (B, R)
        gains = moved + (g - moved) * w[..., None]  # (B, R, heads)
        r = gains.shape[1]
        biased = gains.permute(0, 2, 1)[:, :, None, :, None] * k.view(b, 1, n, r, n)
        return torch.cat([own, biased.reshape(b, heads, n, r * n)], dim=-1)

    def _cached(self, what: str, n: int, cameras) -> torch.Tensor:
        """warped_kernel (`what` "kernel") or same_camera_weight ("weights") for the last cameras seen: a render
        asks for the same ones at every step and layer."""
        key = (what, n) + tuple((tuple(c.shape), tuple(c.double().flatten().tolist())) for c in cameras)
        if key not in self._warp_cache:
            if len(self._warp_cache) > 16:
                self._warp_cache.clear()
            made = self.warped_kernel(n, cameras) if what == "kernel" else self.same_camera_weight(cameras)
            self._warp_cache[key] = made
        return self._warp_cache[key]
