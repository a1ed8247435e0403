"""ImageNet backbones (AlexNet, VGG16 convolutional trunks) in plain torch.

Layer indices match torchvision's `alexnet().features` / `vgg16().features`, so a torchvision
checkpoint's `features.N.weight` loads as `N.weight` without renaming. The weights come from the
weights folder (`weights.py`); nothing here downloads.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .weights import load_into, load_state_dict

# indices of the ReLU outputs LPIPS / DISTS read (relu1 ... relu5, i.e. relu1_2 ... relu5_3 for VGG)
ALEX_TAPS = [1, 4, 7, 9, 11]
ALEX_CHANNELS = [64, 192, 384, 256, 256]
VGG_TAPS = [3, 8, 15, 22, 29]
VGG_CHANNELS = [64, 128, 256, 512, 512]

_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def alexnet_features() -> nn.Sequential:
    """torchvision AlexNet `features` (13 layers; LPIPS uses them up to relu5 at index 11)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=False), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
    )


def vgg16_features(pool: Callable[[int], nn.Module] | None = None) -> nn.Sequential:
    """torchvision VGG16 `features` (31 layers). `pool(channels)` replaces each max-pool (DISTS)."""
    layers: list[nn.Module] = []
    c = 3
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2) if pool is None else pool(c))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    return nn.Sequential(*layers)


def tapped(features: nn.Sequential, x: torch.Tensor, taps: list[int]) -> list[torch.Tensor]:
    """Run `features` up to the last tap and return the outputs after each tapped index."""
    outs = []
    for i, layer in enumerate(features):
        x = layer(x)
        if i in taps:
            outs.append(x)
        if i >= taps[-1]:
            break
    return outs


def load_backbone(features: nn.Sequential, weights_dir, key: str, metric: str) -> nn.Sequential:
    """Fill `features` from a torchvision classification checkpoint (its `features.*` entries)."""
    sd = load_state_dict(weights_dir, key, metric)
    feats = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
    load_into(features, feats, f"{key} backbone")
    return features
