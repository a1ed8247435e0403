import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from diffportrait3d.errors import UserError
from diffportrait3d.metrics.base import from_uint8_hwc
from diffportrait3d.metrics.psnr import psnr
from diffportrait3d.metrics.ssim import ssim
from metrics_helpers import astronaut

torch.set_num_threads(1)


def _pairs():
    import skimage.data as d

    a = astronaut()
    rng = np.random.default_rng(0)
    noisy = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    return [(a, noisy), (d.chelsea()[:300, :400], d.coffee()[:300, :400]), (a[:33, :40], noisy[:33, :40]),
            (a[100:356, 100:356], np.ascontiguousarray(a[100:356, 100:356, ::-1]))]


def test_ssim_matches_scikit_image():
    worst = 0.0
    for a, b in _pairs():
        ref = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=255, channel_axis=-1)
        ours = ssim(from_uint8_hwc(a), from_uint8_hwc(b)).item()
        worst = max(worst, abs(ours - ref))
    print(f"max |SSIM - skimage| = {worst:.2e}")
    assert worst < 1e-4


def test_ssim_batch_identity_and_order():
    a, b = _pairs()[0]
    x, y = from_uint8_hwc(a), from_uint8_hwc(b)
    s = ssim(torch.cat([x, x, y]), torch.cat([x, y, x]))
    assert s[0].item() == pytest.approx(1.0, abs=1e-12)
    assert s[1].item() == pytest.approx(s[2].item(), abs=1e-12)  # symmetric
    assert s[1].item() < 0.5


def test_psnr_closed_form_and_scikit_image():
    x = torch.zeros(2, 3, 16, 16, dtype=torch.float64)  # 0.5 in [0, 1]
    d = torch.tensor([0.1, 0.02], dtype=torch.float64).view(2, 1, 1, 1)  # offsets in [0, 1] units
    y = x + 2 * d  # [-1, 1] units
    assert psnr(y, x).numpy() == pytest.approx([20.0, -20 * np.log10(0.02)], abs=1e-9)
    a, b = _pairs()[0]
    ref = peak_signal_noise_ratio(a, b, data_range=255)
    assert psnr(from_uint8_hwc(b), from_uint8_hwc(a)).item() == pytest.approx(ref, abs=1e-4)
    assert torch.isinf(psnr(x, x)).all()


def test_shape_errors_are_user_errors():
    with pytest.raises(UserError, match="differ in shape"):
        ssim(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 31))
    with pytest.raises(UserError, match=r"\(N, 3, H, W\)"):
        psnr(torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32))
