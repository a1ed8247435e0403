"""`noise_mean="remove"`: every view's Gaussian noise (initial and per step) without its spatial mean
per latent channel.

Why: at t = 999 the signal left in x_T is sqrt(a_999) = 0.069 of the clean latent, and the spatial
mean of white noise over h x h latents has std 1/h. At the miniature model's 16 x 16 latents the two
are the same size (0.0625 vs 0.069 x the image's mean), so the noise's own mean, not the reference or
the 3D-aware proxy, decides each view's global colour (background, skin tint: docs/miniature.md, take
five). Without it x_T's mean is the proxy's. At SD1.5's 64 x 64 latents the effect is 4x smaller.
"keep" (default) is the release's noise, bitwise.
"""

from typing import Callable

import torch

NOISE_MEANS = ("keep", "remove")


def with_noise_mean(prior: Callable[[torch.Tensor], torch.Tensor], noise_mean: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """`prior` (a view plan's noise transform), followed by removing each view's spatial mean if asked."""
    if noise_mean == "keep":
        return prior
    return lambda x: (y := prior(x)) - y.mean(dim=(-2, -1), keepdim=True)
