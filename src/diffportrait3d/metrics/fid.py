"""FID (Heusel et al. 2017): Fréchet distance between Gaussians fitted to Inception features.

    FID = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))

`frechet_distance` follows pytorch-fid: scipy's sqrtm, an eps * I offset on both covariances when
the product is singular, and the imaginary part (numerical noise) dropped when it is small.
`fid` embeds both image sets with the FID Inception-v3 (pool3, 2048-d) from the weights folder.
FID is biased upward for small sets (it needs thousands of images to be comparable with papers);
the report states how many images went in.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from scipy import linalg

from .base import MetricUnavailable, check_images
from .inception import FIDInceptionV3, fid_state_dict
from .weights import load_into, load_state_dict

logger = logging.getLogger(__name__)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (numpy arrays, float64)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"mean/covariance shapes differ: {mu1.shape} vs {mu2.shape}, {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        logger.warning("FID: singular covariance product; adding %g to the diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: imaginary component {np.max(np.abs(covmean.imag)):g} in the covariance square root")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (N, D) features."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need (N >= 2, D) features for a covariance, got shape {features.shape}")
    return features.mean(0), np.cov(features, rowvar=False)


_CACHE: dict[str, FIDInceptionV3] = {}


def load(weights_dir) -> FIDInceptionV3:
    """The pretrained FID Inception (cached); MetricUnavailable when the weight file is missing."""
    key = str(weights_dir)
    if key not in _CACHE:
        model = FIDInceptionV3()
        load_into(model, fid_state_dict(load_state_dict(weights_dir, "inception_fid", "FID")), "inception_fid")
        _CACHE[key] = model.eval().requires_grad_(False)
    return _CACHE[key]


@torch.no_grad()
def inception_features(images: torch.Tensor, model: FIDInceptionV3, batch_size: int = 16) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, 2048) float64 features."""
    images = check_images(images).float()
    return torch.cat([model(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]).double().numpy()


def fid(generated: torch.Tensor, real: torch.Tensor, weights_dir=None, batch_size: int = 16) -> float:
    """FID between two image sets (each (N, 3, H, W) in [-1, 1], N >= 2), lower is better."""
    if len(generated) < 2 or len(real) < 2:
        raise MetricUnavailable("FID", f"needs at least 2 images per set (got {len(generated)} and {len(real)})")
    model = load(weights_dir)
    m1, s1 = feature_stats(inception_features(generated, model, batch_size))
    m2, s2 = feature_stats(inception_features(real, model, batch_size))
    return frechet_distance(m1, s1, m2, s2)
