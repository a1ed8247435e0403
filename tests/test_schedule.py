"""The schedule arithmetic and the denoising loop on a toy model: the release's DDIM as a configured
diffusers DDIMScheduler, and any other diffusers scheduler driving the same loop."""

import math

import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler, UniPCMultistepScheduler

from diffportrait3d.pipeline.sampling import denoise
from diffportrait3d.pipeline.schedule import q_sample, release_ddim, sd15_alphas_cumprod
from diffportrait3d.training.noising import Noiser

AC = sd15_alphas_cumprod()


def ddim(steps):
    s = release_ddim()
    s.set_timesteps(steps)
    return s


def test_leading_timesteps_any_count():
    assert ddim(50).timesteps[[0, 1, -1]].tolist() == [981, 961, 1]
    assert ddim(3).timesteps.tolist() == [667, 334, 1]  # the authors' sampler crashes here


def test_one_step_closed_form():
    s = ddim(10)
    g = torch.Generator().manual_seed(0)
    x, eps, z = (torch.randn(2, 4, 8, 8, generator=g) for _ in range(3))
    t = int(s.timesteps[4])
    a, ap = AC[t].item(), AC[t - 100].item()
    sigma = 0.7 * math.sqrt((1 - ap) / (1 - a) * (1 - a / ap))
    x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
    want = math.sqrt(ap) * x0 + math.sqrt(1 - ap - sigma**2) * eps + sigma * z
    out = s.step(eps, t, x, eta=0.7, variance_noise=z)
    assert (out.pred_original_sample - x0).abs().max().item() < 1e-5
    assert (out.prev_sample - want).abs().max().item() < 1e-5


def test_last_step_uses_alpha_zero_not_one():
    s = ddim(50)
    assert int(s.timesteps[-1]) == 1 and s.final_alpha_cumprod.item() == AC[0].item()
    sigma = 0.5 * s._get_variance(1, 1 - 20).sqrt().item()
    assert abs(sigma - 0.01032) < 1e-5  # for any step count, per the release


def exact_eps(x0):
    """The true noise of x_t = sqrt(a_t) x0 + sqrt(1 - a_t) n, for DDPM-space inputs."""
    def eps_fn(x, t):
        a = AC[int(round(float(t)))]
        return (x - a.sqrt() * x0) / (1 - a).sqrt()
    return eps_fn


def test_exact_denoiser_recovers_x0():
    """With eps_fn returning the true noise of a fixed x0, eta=0 DDIM lands on x0."""
    g = torch.Generator().manual_seed(1)
    x0, n = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
    s = ddim(20)
    out = denoise(exact_eps(x0), q_sample(x0, n, AC, int(s.timesteps[0])), s)
    # deterministic DDIM keeps the noise direction n; the last step goes to alpha_0 (not 1)
    want = AC[0].sqrt() * x0 + (1 - AC[0]).sqrt() * n
    assert (out - want).abs().max().item() < 1e-4


@pytest.mark.parametrize("cls", [DPMSolverMultistepScheduler, UniPCMultistepScheduler, EulerDiscreteScheduler])
def test_any_scheduler_drives_the_loop(cls):
    """Other solvers (their own step rule, input scaling and initial sigma) reach x0 from pure noise."""
    s = cls.from_config(release_ddim().config, timestep_spacing="trailing")
    s.set_timesteps(8)
    g = torch.Generator().manual_seed(2)
    x0, n = torch.randn(1, 4, 8, 8, generator=g) * 0.5, torch.randn(1, 4, 8, 8, generator=g)
    out = denoise(exact_eps(x0), q_sample(x0, n, AC, 999) * s.init_noise_sigma, s)
    assert (out - x0).abs().max().item() < 2e-2 * x0.abs().max().item()


def test_step_noise_needs_a_scheduler_that_takes_it():
    s = EulerDiscreteScheduler.from_config(release_ddim().config)
    s.set_timesteps(2)
    with pytest.raises(ValueError, match="variance_noise"):
        denoise(lambda x, t: x, torch.zeros(1, 4, 2, 2), s, step_noise=torch.zeros(2, 1, 4, 2, 2))


def test_noiser_is_the_forward_process_per_row():
    z0 = torch.randn(6, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    x_t, t, noise = Noiser()(z0, torch.Generator().manual_seed(4), group=3)
    assert t[:3].unique().numel() == 1 and t[3:].unique().numel() == 1
    for i in (0, 5):
        want = AC[t[i]].sqrt() * z0[i] + (1 - AC[t[i]]).sqrt() * noise[i]
        assert (x_t[i] - want).abs().max().item() < 1e-6


@pytest.mark.parametrize("name", sorted(__import__("diffportrait3d.pipeline.modes", fromlist=["MODES"]).MODES))
def test_every_sampling_mode_reaches_x0_with_the_exact_denoiser(name):
    """Each mode's solver, at its own step count and with the pipeline's eta 0.5, from the t = 999 start
    the pipeline uses, lands on x0 when the denoiser knows the true noise. Measured: the DPM-Solver and
    UniPC modes 0.000, the DDIM ones 0.023-0.025 (the release DDIM ends at alpha_0, not 1, keeping
    sqrt(1 - alpha_0) = 0.03 of the noise); a denoiser off by 100 timesteps misses by 0.12-0.17."""
    from diffportrait3d.pipeline.modes import MODES

    mode = MODES[name]
    s = mode.scheduler(release_ddim())
    s.set_timesteps(mode.steps)
    g = torch.Generator().manual_seed(3)
    x0, n = torch.randn(1, 4, 8, 8, generator=g) * 0.5, torch.randn(1, 4, 8, 8, generator=g)
    out = denoise(exact_eps(x0), q_sample(x0, n, AC, int(s.timesteps[0])) * s.init_noise_sigma, s, eta=0.5,
                  generator=torch.Generator().manual_seed(4))
    err = (out - x0).abs().mean().item()
    from diffusers import DDIMScheduler

    assert err < (0.04 if isinstance(s, DDIMScheduler) else 1e-3), (name, err)


@pytest.mark.parametrize("per_group", [False, True])
def test_offset_noise_adds_one_random_constant_per_row_and_channel(per_group):
    """noise_offset: the draws of offset 0 (bitwise the plain Noiser's) plus offset x N(0, 1), constant over
    the image, independent per row and channel; fixed-t validation batches keep plain noise."""
    z0 = torch.zeros(512, 4, 4, 4)

    def gens():
        return [torch.Generator().manual_seed(i) for i in range(512)] if per_group else torch.Generator().manual_seed(9)

    _, t0, plain = Noiser()(z0, gens())
    _, t1, offset = Noiser(offset=0.5)(z0, gens())
    assert torch.equal(t0, t1)
    diff = offset - plain
    assert (diff - diff[..., :1, :1]).abs().max().item() < 1e-6  # constant over the image
    per_channel = diff[:, :, 0, 0]
    assert abs(per_channel.std().item() / 0.5 - 1) < 0.05 and abs(per_channel.mean().item()) < 0.05
    assert abs(torch.corrcoef(per_channel.T)[0, 1].item()) < 0.15  # channels drawn independently
    _, _, val_plain = Noiser()(z0, gens(), timesteps=torch.zeros(512))
    _, _, val_offset = Noiser(offset=0.5)(z0, gens(), timesteps=torch.zeros(512))
    assert torch.equal(val_plain, val_offset)
