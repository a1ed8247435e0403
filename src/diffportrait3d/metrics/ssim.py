"""SSIM (Wang et al. 2004) with an 11x11 Gaussian window, sigma 1.5.

Matches `skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, channel_axis=-1)` on images in [0, 1]:
the window is scipy's `gaussian_filter` (truncate 3.5 -> radius 5) with half-sample symmetric
('reflect' in scipy) borders, the SSIM map is cropped by the window radius before averaging, and
the colour score is the mean over channels. Computed in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import check_pair, to_unit

K1, K2 = 0.01, 0.03


def gaussian_kernel1d(sigma: float = 1.5, truncate: float = 3.5) -> torch.Tensor:
    """scipy.ndimage's kernel: exp(-x^2 / 2 sigma^2) on |x| <= int(truncate * sigma + 0.5), normalised."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _symmetric_pad(x: torch.Tensor, r: int) -> torch.Tensor:
    # scipy 'reflect' repeats the edge sample (d c b a | a b c d); torch's 'reflect' does not
    h, w = x.shape[-2:]
    rows = torch.cat([torch.arange(r - 1, -1, -1), torch.arange(h), torch.arange(h - 1, h - r - 1, -1)])
    cols = torch.cat([torch.arange(r - 1, -1, -1), torch.arange(w), torch.arange(w - 1, w - r - 1, -1)])
    return x[..., rows.clamp(0, h - 1), :][..., cols.clamp(0, w - 1)]


def gaussian_filter(x: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W), same size out, symmetric borders."""
    k = gaussian_kernel1d(sigma).to(x)
    r = (k.numel() - 1) // 2
    c = x.shape[1]
    x = _symmetric_pad(x, r)
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # along H
    return F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # along W


def ssim_map(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM of two (N, C, H, W) batches already in [0, data_range] (no cropping)."""
    x, y = x.double(), y.double()
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_x, mu_y = gaussian_filter(x, sigma), gaussian_filter(y, sigma)
    var_x = gaussian_filter(x * x, sigma) - mu_x**2
    var_y = gaussian_filter(y * y, sigma) - mu_y**2
    cov = gaussian_filter(x * y, sigma) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def ssim(generated: torch.Tensor, target: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """SSIM per image, (N,) float64, higher is better (1 for identical images).

    Inputs are (N, 3, H, W) in [-1, 1]; they are mapped to [0, 1] and scored with data_range 1,
    the same numbers scikit-image gives on the 8-bit images with data_range 255.
    """
    x, y = check_pair(generated, target)
    s = ssim_map(to_unit(x), to_unit(y), 1.0, sigma)
    r = (gaussian_kernel1d(sigma).numel() - 1) // 2
    if min(s.shape[-2:]) <= 2 * r:
        raise ValueError(f"images must be larger than {2 * r + 1} pixels on each side for SSIM, got {tuple(s.shape[-2:])}")
    return s[..., r:-r, r:-r].mean(dim=(1, 2, 3))
