"""DISTS (Ding et al. 2020): structure and texture similarity on VGG16 features with L2 pooling.

For each of six feature sets (the image itself and VGG16 relu1_2 ... relu5_3, every max-pool
replaced by L2 pooling) and each channel i, with spatial means mu, variances s^2 and covariance:

    S1_i = (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1)          (texture)
    S2_i = (2 s_xy + c2) / (s_x^2 + s_y^2 + c2)                 (structure)
    DISTS = 1 - sum_i (alpha_i S1_i + beta_i S2_i) / (sum alpha + sum beta),  c1 = c2 = 1e-6

Inputs are in [0, 1] (DISTS's convention; we convert from [-1, 1]) and are ImageNet-normalised
before VGG. Lower is better, 0 for identical images. Weights: torchvision vgg16-397923af.pth and
DISTS's weights.pt holding `alpha`, `beta` of shape (1, 1475, 1, 1).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .backbones import VGG_CHANNELS, VGG_TAPS, load_backbone, tapped, vgg16_features
from .base import MetricUnavailable, check_pair, to_unit
from .weights import load_state_dict

C1 = C2 = 1e-6


class L2Pool(nn.Module):
    """sqrt(blur(x^2)) with a 3x3 Hann window, stride 2, padding 1 (replaces VGG's max-pools)."""

    def __init__(self, channels: int):
        super().__init__()
        a = torch.from_numpy(np.hanning(5)[1:-1]).float()  # [0.5, 1, 0.5]
        g = a[:, None] * a[None, :]
        self.register_buffer("filter", (g / g.sum()).expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x**2, self.filter, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


class DISTS(nn.Module):
    def __init__(self, features: nn.Sequential, taps: list[int], channels: list[int]):
        """`channels` lists the feature sets' widths, the input image's 3 first."""
        super().__init__()
        self.features = features
        self.taps = list(taps)
        self.chns = list(channels)
        self.alpha = nn.Parameter(torch.full((1, sum(channels), 1, 1), 0.1))
        self.beta = nn.Parameter(torch.full((1, sum(channels), 1, 1), 0.1))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def feats(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x] + tapped(self.features, (x - self.mean) / self.std, self.taps)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] twice -> (N,) distances."""
        w = self.alpha.sum() + self.beta.sum()
        alpha = torch.split(self.alpha / w, self.chns, dim=1)
        beta = torch.split(self.beta / w, self.chns, dim=1)
        sim = 0
        for a, b, fx, fy in zip(alpha, beta, self.feats(x), self.feats(y)):
            mx, my = fx.mean((2, 3), keepdim=True), fy.mean((2, 3), keepdim=True)
            vx, vy = ((fx - mx) ** 2).mean((2, 3), keepdim=True), ((fy - my) ** 2).mean((2, 3), keepdim=True)
            cov = (fx * fy).mean((2, 3), keepdim=True) - mx * my
            s1 = (2 * mx * my + C1) / (mx**2 + my**2 + C1)
            s2 = (2 * cov + C2) / (vx + vy + C2)
            sim = sim + (a * s1 + b * s2).sum(dim=(1, 2, 3))
        return 1 - sim


def build() -> DISTS:
    return DISTS(vgg16_features(pool=L2Pool), VGG_TAPS, [3] + VGG_CHANNELS)


_CACHE: dict[str, DISTS] = {}


def load(weights_dir) -> DISTS:
    """The pretrained DISTS network (cached); MetricUnavailable when a weight file is missing."""
    key = str(weights_dir)
    if key not in _CACHE:
        model = build()
        load_backbone(model.features, weights_dir, "vgg16", "DISTS")
        ab = load_state_dict(weights_dir, "dists", "DISTS")
        for name in ("alpha", "beta"):
            if name not in ab or ab[name].shape != getattr(model, name).shape:
                raise MetricUnavailable("DISTS", f"dists_weights.pt lacks a {name} tensor of shape {tuple(getattr(model, name).shape)}")
            getattr(model, name).data.copy_(ab[name])
        _CACHE[key] = model.eval().requires_grad_(False)
    return _CACHE[key]


@torch.no_grad()
def dists(generated: torch.Tensor, target: torch.Tensor, weights_dir=None, batch_size: int = 16) -> torch.Tensor:
    """DISTS per image pair, (N,), lower is better. Inputs (N, 3, H, W) in [-1, 1]."""
    x, y = check_pair(generated, target)
    model = load(weights_dir)
    x, y = to_unit(x.float()), to_unit(y.float())
    return torch.cat([model(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size)])
