"""DDIM as a plain function, on a toy model: the closed-form update and the schedule rules."""

import math

import pytest
import torch

from diffportrait3d.pipeline.ddim import ddim_schedule, ddim_step, ddim_timesteps, sample_ddim
from diffportrait3d.pipeline.schedule import q_sample, sd15_alphas_cumprod

AC = sd15_alphas_cumprod()


def test_leading_timesteps_any_count():
    assert ddim_timesteps(50)[[0, 1, -1]].tolist() == [1, 21, 981]
    assert ddim_timesteps(3).tolist() == [1, 334, 667]  # the authors' sampler crashes here
    with pytest.raises(ValueError):
        ddim_timesteps(0)


def test_one_step_closed_form():
    s = ddim_schedule(AC, 10, eta=0.7)
    g = torch.Generator().manual_seed(0)
    x, eps, z = (torch.randn(2, 4, 8, 8, generator=g) for _ in range(3))
    k = 4
    t = int(s.timesteps[k])
    t_prev = t - 100
    a, ap = AC[t].item(), AC[t_prev].item()
    sigma = 0.7 * math.sqrt((1 - ap) / (1 - a) * (1 - a / ap))
    x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
    want = math.sqrt(ap) * x0 + math.sqrt(1 - ap - sigma**2) * eps + sigma * z
    got, pred_x0 = ddim_step(x, eps, k, s, z)
    assert (pred_x0 - x0).abs().max().item() < 1e-5
    assert (got - want).abs().max().item() < 1e-5


def test_last_step_uses_alpha_zero_not_one():
    s = ddim_schedule(AC, 50, eta=0.5)
    assert int(s.timesteps[-1]) == 1 and s.alphas_prev[-1].item() == AC[0].item()
    assert abs(s.sigmas[-1].item() - 0.01032) < 1e-5  # for any step count, per the release


def test_exact_denoiser_recovers_x0():
    """With eps_fn returning the true noise of a fixed x0, eta=0 DDIM lands on x0."""
    g = torch.Generator().manual_seed(1)
    x0, n = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
    s = ddim_schedule(AC, 20, eta=0.0)
    x_t = q_sample(x0, n, AC, int(s.timesteps[0]))

    def eps_fn(x, t):
        a = AC[int(t)]
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    out = sample_ddim(eps_fn, x_t, s, disable=True)
    # deterministic DDIM keeps the noise direction n; the last step goes to alpha_0 (not 1)
    want = AC[0].sqrt() * x0 + (1 - AC[0]).sqrt() * n
    assert (out - want).abs().max().item() < 1e-4


def test_eta_needs_noise():
    s = ddim_schedule(AC, 4, eta=0.5)
    with pytest.raises(ValueError):
        ddim_step(torch.zeros(1), torch.zeros(1), 0, s, None)
