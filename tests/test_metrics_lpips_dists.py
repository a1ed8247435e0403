"""LPIPS and DISTS: the formulas against hand computations on tiny networks, properties on the
real architectures with fake (random) weight files, and the n/a path. No real weights here."""

import numpy as np
import pytest
import torch
from torch import nn

from diffportrait3d.errors import MetricUnavailable, UserError
from diffportrait3d.metrics import dists as dists_mod
from diffportrait3d.metrics import lpips as lpips_mod
from diffportrait3d.metrics.backbones import alexnet_features, vgg16_features
from diffportrait3d.metrics.dists import DISTS, L2Pool, dists
from diffportrait3d.metrics.lpips import LPIPS, lpips
from metrics_helpers import save_torchvision_like, unverified

torch.set_num_threads(1)


def tiny_backbone():
    # per-pixel linear layers, so numpy can recompute the features exactly
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(4, 5, 1), nn.ReLU())


def numpy_features(seq, x):
    """x: (3, H, W) numpy -> [tap1 (4, H, W), tap2 (5, H/2, W/2)] computed by hand."""
    w1, b1 = seq[0].weight.detach().double().numpy()[:, :, 0, 0], seq[0].bias.detach().double().numpy()
    w2, b2 = seq[3].weight.detach().double().numpy()[:, :, 0, 0], seq[3].bias.detach().double().numpy()
    f1 = np.maximum(np.einsum("oc,chw->ohw", w1, x) + b1[:, None, None], 0)
    c, h, w = f1.shape
    pooled = f1.reshape(c, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
    f2 = np.maximum(np.einsum("oc,chw->ohw", w2, pooled) + b2[:, None, None], 0)
    return [f1, f2]


def test_lpips_formula_by_hand():
    model = LPIPS(tiny_backbone(), taps=[1, 4], channels=[4, 5]).double()
    with torch.no_grad():
        for lin in model.lins:
            lin.weight.copy_(torch.rand_like(lin.weight))
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64) * 2 - 1, torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    got = model(x, y).detach().numpy()
    shift, scale = np.array([-0.030, -0.088, -0.188])[:, None, None], np.array([0.458, 0.448, 0.450])[:, None, None]
    for n in range(2):
        fx = numpy_features(model.features, (x[n].numpy() - shift) / scale)
        fy = numpy_features(model.features, (y[n].numpy() - shift) / scale)
        total = 0.0
        for lin, a, b in zip(model.lins, fx, fy):
            w = lin.weight.detach().numpy()[0, :, 0, 0]
            na = a / (np.sqrt((a**2).sum(0)) + 1e-10)
            nb = b / (np.sqrt((b**2).sum(0)) + 1e-10)
            total += np.mean(np.einsum("c,chw->hw", w, (na - nb) ** 2))
        assert got[n] == pytest.approx(total, rel=1e-7)  # the shift/scale constants are stored as float32


def test_dists_formula_by_hand():
    model = DISTS(tiny_backbone(), taps=[1, 4], channels=[3, 4, 5]).double()
    with torch.no_grad():
        model.alpha.copy_(torch.rand_like(model.alpha))
        model.beta.copy_(torch.rand_like(model.beta))
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64), torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64)
    got = model(x, y).item()
    mean, std = np.array([0.485, 0.456, 0.406])[:, None, None], np.array([0.229, 0.224, 0.225])[:, None, None]
    fx = [x[0].numpy()] + numpy_features(model.features, (x[0].numpy() - mean) / std)
    fy = [y[0].numpy()] + numpy_features(model.features, (y[0].numpy() - mean) / std)
    alpha, beta = model.alpha.detach().numpy().ravel(), model.beta.detach().numpy().ravel()
    sim, i = 0.0, 0
    for a, b in zip(fx, fy):
        for c in range(a.shape[0]):
            mx, my = a[c].mean(), b[c].mean()
            vx, vy, cov = a[c].var(), b[c].var(), (a[c] * b[c]).mean() - mx * my
            sim += alpha[i] * (2 * mx * my + 1e-6) / (mx**2 + my**2 + 1e-6) + beta[i] * (2 * cov + 1e-6) / (vx + vy + 1e-6)
            i += 1
    assert got == pytest.approx(1 - sim / (alpha.sum() + beta.sum()), rel=1e-7)


def test_l2pool_keeps_constants_and_halves_size():
    out = L2Pool(2)(torch.full((1, 2, 8, 8), 3.0))
    assert out.shape == (1, 2, 4, 4)
    assert torch.allclose(out[..., 1:, 1:], torch.tensor(3.0))  # top/left border sees zero padding


@pytest.fixture
def fake_weights(tmp_path, monkeypatch):
    """A weights folder with random torchvision-named backbones and LPIPS/DISTS head files."""
    unverified(monkeypatch, "alexnet", "vgg16", "lpips_alex", "dists")
    save_torchvision_like(tmp_path / "alexnet-owt-7be5be79.pth", alexnet_features(), seed=0)
    save_torchvision_like(tmp_path / "vgg16-397923af.pth", vgg16_features(), seed=1)
    torch.manual_seed(2)
    torch.save({f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate([64, 192, 384, 256, 256])},
               tmp_path / "lpips_v0.1_alex.pth")
    torch.save({"alpha": torch.rand(1, 1475, 1, 1), "beta": torch.rand(1, 1475, 1, 1)}, tmp_path / "dists_weights.pt")
    monkeypatch.setattr(lpips_mod, "_CACHE", {})
    monkeypatch.setattr(dists_mod, "_CACHE", {})
    return tmp_path


def _noisy_series(levels):
    g = torch.Generator().manual_seed(3)
    base = torch.rand(1, 3, 64, 64, generator=g) * 1.6 - 0.8
    noise = torch.randn(1, 3, 64, 64, generator=g)
    return base, torch.cat([(base + s * noise).clamp(-1, 1) for s in levels])


@pytest.mark.parametrize("metric", [lpips, dists])
def test_properties_on_real_architectures(fake_weights, metric):
    levels = [0.0, 0.05, 0.1, 0.2, 0.4]
    base, noisy = _noisy_series(levels)
    d = metric(noisy, base.expand_as(noisy), weights_dir=fake_weights)
    assert d[0].abs().item() < 1e-6  # identical images
    assert (d[1:] > 0).all() and (torch.diff(d) > 0).all(), d  # grows with the noise level
    back = metric(base.expand_as(noisy), noisy, weights_dir=fake_weights)
    assert torch.allclose(d, back, atol=1e-6)  # symmetric
    single = metric(noisy[2:3], base, weights_dir=fake_weights)
    assert single.item() == pytest.approx(d[2].item(), abs=1e-6)  # batch == single


def test_weights_load_into_the_right_layers(fake_weights):
    model = lpips_mod.load(fake_weights, "alex")
    sd = torch.load(fake_weights / "alexnet-owt-7be5be79.pth", weights_only=True)
    assert torch.equal(model.features[8].weight, sd["features.8.weight"])
    heads = torch.load(fake_weights / "lpips_v0.1_alex.pth", weights_only=True)
    assert torch.equal(model.lins[3].weight, heads["lin3.model.1.weight"])
    vgg = torch.load(fake_weights / "vgg16-397923af.pth", weights_only=True)
    assert torch.equal(dists_mod.load(fake_weights).features[28].weight, vgg["features.28.weight"])


def test_missing_weights_are_na_never_numbers(tmp_path):
    x = torch.zeros(1, 3, 32, 32)
    with pytest.raises(MetricUnavailable, match="alexnet-owt-7be5be79.pth not found"):
        lpips(x, x, weights_dir=tmp_path)
    with pytest.raises(MetricUnavailable, match="vgg16-397923af.pth not found"):
        dists(x, x, weights_dir=tmp_path)
    with pytest.raises(MetricUnavailable, match="no weights folder"):
        lpips(x, x, weights_dir=None)


def test_wrong_file_is_rejected_by_sha256(tmp_path, monkeypatch):
    monkeypatch.setattr(lpips_mod, "_CACHE", {})
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "alexnet-owt-7be5be79.pth")
    with pytest.raises(UserError, match="sha256"):
        lpips(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32), weights_dir=tmp_path)


def test_wrong_names_are_reported(tmp_path, monkeypatch):
    unverified(monkeypatch, "alexnet")
    monkeypatch.setattr(lpips_mod, "_CACHE", {})
    torch.save({"features.0.weight": torch.zeros(64, 3, 11, 11)}, tmp_path / "alexnet-owt-7be5be79.pth")
    with pytest.raises(UserError, match=r"missing \['0.bias'"):
        lpips(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32), weights_dir=tmp_path)
