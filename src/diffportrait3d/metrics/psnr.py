"""PSNR = 10 log10(data_range^2 / MSE), per image, on images mapped to [0, 1] (data_range 1)."""

from __future__ import annotations

import torch

from .base import check_pair, to_unit


def psnr(generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image, (N,) float64, higher is better; +inf for identical images.

    Inputs are (N, 3, H, W) in [-1, 1]; the MSE is taken over channels and pixels in [0, 1],
    which equals scikit-image's `peak_signal_noise_ratio` on 8-bit images with data_range 255.
    """
    x, y = check_pair(generated, target)
    mse = ((to_unit(x).double() - to_unit(y).double()) ** 2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(1.0 / mse)
