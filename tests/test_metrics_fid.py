import numpy as np
import pytest
import torch

from diffportrait3d.errors import MetricUnavailable
from diffportrait3d.metrics import fid as fid_mod
from diffportrait3d.metrics.fid import feature_stats, fid, frechet_distance, frechet_distance_from_features
from diffportrait3d.metrics.inception import FIDInceptionV3
from metrics_helpers import unverified

torch.set_num_threads(1)


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(0)
    d = 16
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_rotated_commuting_covariances():
    # same eigenvectors: FID = |mu1 - mu2|^2 + sum (sqrt(l1) - sqrt(l2))^2 over the eigenvalues
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    l1, l2 = rng.uniform(0.5, 2, 8), rng.uniform(0.5, 2, 8)
    mu = rng.normal(size=8)
    expected = mu @ mu + np.sum((np.sqrt(l1) - np.sqrt(l2)) ** 2)
    got = frechet_distance(mu, q @ np.diag(l1) @ q.T, np.zeros(8), q @ np.diag(l2) @ q.T)
    assert got == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_identical_and_singular():
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(5, 10))  # 5 samples in 10-d: singular covariance
    mu, sigma = feature_stats(feats)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6
    mu2, sigma2 = feature_stats(feats + 1.0)
    assert frechet_distance(mu, sigma, mu2, sigma2) == pytest.approx(10.0, abs=1e-4)  # pure shift by 1 in 10 dims


def test_from_features_matches_the_covariance_form():
    rng = np.random.default_rng(3)
    f1 = rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8))
    f2 = rng.normal(size=(200, 8)) @ rng.normal(size=(8, 8)) + 0.5
    ref = frechet_distance(*feature_stats(f1), *feature_stats(f2))
    assert frechet_distance_from_features(f1, f2) == pytest.approx(ref, rel=1e-9)
    # fewer samples than dimensions: still exact against an eps-free eigenvalue computation
    g1, g2 = rng.normal(size=(6, 40)), rng.normal(size=(5, 40)) + 0.2
    (m1, s1), (m2, s2) = feature_stats(g1), feature_stats(g2)
    ev = np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)
    expected = (m1 - m2) @ (m1 - m2) + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(ev).sum()
    assert frechet_distance_from_features(g1, g2) == pytest.approx(expected, rel=1e-6)
    assert abs(frechet_distance_from_features(g1, g1)) < 1e-9


def test_fid_is_na_without_weights(tmp_path):
    x = torch.zeros(2, 3, 32, 32)
    with pytest.raises(MetricUnavailable, match="pt_inception-2015-12-05-6726825d.pth not found"):
        fid(x, x, weights_dir=tmp_path)
    with pytest.raises(MetricUnavailable, match="at least 2 images"):
        fid(x[:1], x, weights_dir=tmp_path)


def test_inception_loads_pytorch_fid_names(tmp_path, monkeypatch):
    # a pytorch-fid style file: our names + a 1008-way fc, without BatchNorm counters
    unverified(monkeypatch, "inception_fid")
    monkeypatch.setattr(fid_mod, "_CACHE", {})
    torch.manual_seed(0)
    sd = {k: v for k, v in FIDInceptionV3().state_dict().items() if not k.endswith("num_batches_tracked")}
    sd["fc.weight"], sd["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    torch.save(sd, tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    model = fid_mod.load(tmp_path)
    assert torch.equal(model.Mixed_6c.branch7x7dbl_3.conv.weight, sd["Mixed_6c.branch7x7dbl_3.conv.weight"])
    g = torch.Generator().manual_seed(1)
    a = torch.rand(3, 3, 48, 48, generator=g) * 2 - 1
    feats = fid_mod.inception_features(a, model)
    assert feats.shape == (3, 2048) and np.isfinite(feats).all()
    scale = feats.var(0).sum()
    assert abs(fid(a, a, weights_dir=tmp_path)) < 1e-9 * scale
    assert fid(a, a.flip(-1) * 0.5, weights_dir=tmp_path) > 1e-3 * scale


def test_fid_inception_has_the_published_size():
    # torchvision's inception_v3 has 27,161,264 parameters; minus AuxLogits (3,326,696) and the
    # 1000-way fc (2,049,000) leaves the 21,785,568 of the feature trunk
    assert sum(p.numel() for p in FIDInceptionV3().parameters()) == 21_785_568
