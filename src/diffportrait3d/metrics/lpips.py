"""LPIPS v0.1 (Zhang et al. 2018): learned perceptual distance on AlexNet or VGG16 features.

    d(x, y) = sum_l mean_{h,w} sum_c w_lc (f_l(x)_chw / |f_l(x)_hw| - f_l(y)_chw / |f_l(y)_hw|)^2

with f_l the ReLU outputs of five backbone layers after the fixed input scaling
(x - shift) / scale, |.| the channel-wise L2 norm (+1e-10), and w_l the learned non-negative
1x1 linear heads. Inputs are in [-1, 1] (LPIPS's own convention). Lower is better, 0 for
identical images.

Weights: torchvision's alexnet-owt-7be5be79.pth / vgg16-397923af.pth and the LPIPS v0.1 heads
(registry in `weights.py`). The heads' `lin{k}.model.1.weight` load as `lins.{k}.weight`.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from .backbones import ALEX_CHANNELS, ALEX_TAPS, VGG_CHANNELS, VGG_TAPS, alexnet_features, load_backbone, tapped, vgg16_features
from .base import check_pair
from .weights import load_into, load_state_dict

EPS = 1e-10


class LPIPS(nn.Module):
    """LPIPS over any tapped feature extractor (the real ones, or a tiny one in tests)."""

    def __init__(self, features: nn.Sequential, taps: list[int], channels: list[int]):
        super().__init__()
        self.features = features
        self.taps = list(taps)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in channels)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)

    @staticmethod
    def normalize(f: torch.Tensor) -> torch.Tensor:
        return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] twice -> (N,) distances."""
        fx = tapped(self.features, (x - self.shift) / self.scale, self.taps)
        fy = tapped(self.features, (y - self.shift) / self.scale, self.taps)
        d = 0
        for lin, a, b in zip(self.lins, fx, fy):
            d = d + lin((self.normalize(a) - self.normalize(b)) ** 2).mean(dim=(1, 2, 3))
        return d


def build(net: str = "alex") -> LPIPS:
    if net == "alex":
        return LPIPS(alexnet_features(), ALEX_TAPS, ALEX_CHANNELS)
    if net == "vgg":
        return LPIPS(vgg16_features(), VGG_TAPS, VGG_CHANNELS)
    raise ValueError(f"net must be 'alex' or 'vgg', got {net!r}")


_CACHE: dict[tuple, LPIPS] = {}


def load(weights_dir, net: str = "alex") -> LPIPS:
    """The pretrained LPIPS network (cached); MetricUnavailable when a weight file is missing."""
    key = (str(weights_dir), net)
    if key not in _CACHE:
        model = build(net)
        load_backbone(model.features, weights_dir, "alexnet" if net == "alex" else "vgg16", "LPIPS")
        heads = load_state_dict(weights_dir, f"lpips_{net}", "LPIPS")
        # lpips stores head k as lin{k}.model.1.weight (index 0 is a dropout)
        heads = {f"{m[1]}.weight": v for k, v in heads.items() if (m := re.fullmatch(r"lin(\d+)\.model\.\d+\.weight", k))}
        load_into(model.lins, heads, f"lpips_{net}")
        _CACHE[key] = model.eval().requires_grad_(False)
    return _CACHE[key]


@torch.no_grad()
def lpips(generated: torch.Tensor, target: torch.Tensor, weights_dir=None, net: str = "alex",
          batch_size: int = 16) -> torch.Tensor:
    """LPIPS per image pair, (N,), lower is better. Inputs (N, 3, H, W) in [-1, 1]."""
    x, y = check_pair(generated, target)
    model = load(weights_dir, net)
    return torch.cat([model(x[i:i + batch_size].float(), y[i:i + batch_size].float())
                      for i in range(0, len(x), batch_size)])
