"""FID (Heusel et al. 2017): Fréchet distance between Gaussians fitted to Inception features.

    FID = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))

`frechet_distance` follows pytorch-fid: scipy's sqrtm, an eps * I offset on both covariances when
the product is singular, and the imaginary part (numerical noise) dropped when it is small.
`frechet_distance_from_features` computes the same number from the features themselves (exact,
used when a set has fewer images than feature dimensions). `fid` embeds both image sets with the
FID Inception-v3 (pool3, 2048-d) from the weights folder.
FID is biased upward for small sets (it needs thousands of images to be comparable with papers);
the report states how many images went in.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from scipy import linalg

from ..errors import MetricUnavailable
from .base import check_images
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


def frechet_distance_from_features(f1: np.ndarray, f2: np.ndarray) -> float:
    """The same distance from raw (N1, D) and (N2, D) features, exact and fast when N << D.

    With centred features A1, A2 and S_i = A_i^T A_i / (N_i - 1), the non-zero eigenvalues of
    S1 S2 are the squared singular values of A1 A2^T / sqrt((N1 - 1)(N2 - 1)), so
    tr (S1 S2)^(1/2) is that matrix's nuclear norm: no D x D square root, no eps, no complex parts
    (sqrtm of a rank-deficient 2048 x 2048 product is where pytorch-fid's version breaks down).
    """
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1] or min(len(f1), len(f2)) < 2:
        raise ValueError(f"need (N >= 2, D) features with equal D, got {f1.shape} and {f2.shape}")
    mu1, mu2 = f1.mean(0), f2.mean(0)
    a1, a2 = f1 - mu1, f2 - mu2
    c1, c2 = len(f1) - 1, len(f2) - 1
    tr1, tr2 = (a1**2).sum() / c1, (a2**2).sum() / c2
    tr_covmean = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum() / np.sqrt(c1 * c2)
    diff = mu1 - mu2
    return float(diff @ diff + tr1 + tr2 - 2 * tr_covmean)


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
    f1, f2 = inception_features(generated, model, batch_size), inception_features(real, model, batch_size)
    if min(len(f1), len(f2)) > f1.shape[1]:
        return frechet_distance(*feature_stats(f1), *feature_stats(f2))
    return frechet_distance_from_features(f1, f2)  # fewer images than feature dimensions
