"""View schedules for long orbits: windows, fusion, loops, FreeNoise, anchors; on the tiny pipeline."""

import numpy as np
import pytest
import torch

from diffportrait3d.cameras import camera_labels
from diffportrait3d.errors import UserError
from diffportrait3d.models.denoiser import guided_eps, shared_reference_bank
from diffportrait3d.models.view_module import ViewTransformer
from diffportrait3d.pipeline.build import preset_components
from diffportrait3d.pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline
from diffportrait3d.pipeline.view_windows import (ViewPlan, anchor_indices, freenoise, fuse, is_closed_path, mixed_noise,
                                                  camera_noise, progressive_noise, shifted_windows, sliding_windows)


def test_sliding_windows_cover_every_view_with_the_requested_overlap():
    assert sliding_windows(16, 8, 2) == [list(range(0, 8)), list(range(6, 14)), list(range(8, 16))]  # last ends at 15
    assert sliding_windows(5, 8, 2) == [list(range(5))]
    loop = sliding_windows(12, 4, 1, loop=True)
    assert loop[-1] == [9, 10, 11, 0]  # wraps: view 11 is denoised next to view 0
    assert all(len(w) == 4 for w in loop) and sorted({v for w in loop for v in w}) == list(range(12))


def test_shifted_windows_partition_the_views_and_move_the_boundaries():
    for step in (0, 1):
        for loop in (False, True):
            ws = shifted_windows(20, 8, step, loop)
            assert sorted(v for w in ws for v in w) == list(range(20))
    assert shifted_windows(16, 8, 0) == [list(range(8)), list(range(8, 16))]
    assert shifted_windows(16, 8, 1) == [list(range(4)), list(range(4, 12)), list(range(12, 16))]
    assert shifted_windows(16, 8, 1, loop=True) == [list(range(4, 12)), list(range(12, 16)) + list(range(4))]


def test_fuse_is_exact_without_overlap_and_a_weighted_mean_with_it():
    x = torch.randn(10, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    per_view = lambda w: x[w] * 3.0  # noqa: E731  a prediction that depends on the view only
    assert torch.equal(fuse(per_view, x, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]), x * 3.0)
    torch.testing.assert_close(fuse(per_view, x, sliding_windows(10, 4, 2)), x * 3.0, rtol=0, atol=1e-6)
    # two windows give view 2 the predictions 0 and 1 with triangular weights 1 (end of window A) and 2 (middle of B)
    fused = fuse(lambda w: torch.full((len(w), 1), float(w[0] == 1)), torch.zeros(4, 1), [[0, 1, 2], [1, 2, 3]])
    assert fused.flatten().tolist() == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])  # view 1: (0*2 + 1*1)/3, view 2: (0*1 + 1*2)/3
    with pytest.raises(ValueError, match="in no window"):
        fuse(per_view, x, [[0, 1]])


def test_freenoise_repeats_shuffles_of_the_first_group():
    noise = torch.randn(20, 4, 2, 2, generator=torch.Generator().manual_seed(0))
    out = freenoise(noise, 8)
    assert torch.equal(out[:8], noise[:8]) and torch.equal(out, freenoise(noise, 8))
    first = {tuple(v.flatten().tolist()) for v in noise[:8]}
    assert all(tuple(v.flatten().tolist()) in first for v in out[8:])
    assert not torch.equal(out[8:16], noise[:8])  # shuffled, not repeated in order
    assert torch.equal(freenoise(noise[:6], 8), noise[:6])


def test_mixed_noise_keeps_unit_variance_and_correlates_every_pair_of_views():
    noise = torch.randn(16, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    m = mixed_noise(noise, 0.5).flatten(1)
    corr = torch.corrcoef(m)[~torch.eye(16, dtype=bool)]
    expected = 0.5 - 0.5 / 15  # the own parts (deviations from the mean) correlate by -1/(N-1)
    assert abs(m.std().item() - 1) < 0.01 and abs(corr.mean().item() - expected) < 0.01 and corr.std().item() < 0.03
    assert torch.equal(mixed_noise(noise[:1], 0.5), noise[:1])


def test_progressive_noise_correlates_neighbours_and_closes_loops():
    noise = torch.randn(24, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    open_ = torch.corrcoef(progressive_noise(noise, 0.8).flatten(1))
    for d in (1, 2, 5):  # an AR(1) along the path: rho**d at distance d, wherever on the path
        band = torch.diagonal(open_, d)
        assert abs(band.mean().item() - 0.8**d) < 0.01 and band.std().item() < 0.02, d
    assert abs(open_[0, 23].item()) < 0.03  # the ends of an open path are unrelated
    loop = progressive_noise(noise, 0.8, loop=True)
    corr = torch.corrcoef(loop.flatten(1))
    a = -np.log(0.8)  # periodic Ornstein-Uhlenbeck: first and last view are neighbours like any other
    assert abs(corr[0, 23].item() - np.cosh(a * 11) / np.cosh(a * 12)) < 0.01
    root = progressive_noise(torch.eye(24, dtype=torch.float64), 0.8, loop=True)  # noise = S z: z = I gives S
    d = np.abs(np.arange(24)[:, None] - np.arange(24)[None, :])
    np.testing.assert_allclose((root @ root.T).numpy(), np.cosh(a * (12 - d)) / np.cosh(a * 12), rtol=0, atol=1e-12)
    assert abs(corr[0, 23].item() - corr[5, 6].item()) < 0.02 and abs(corr[0, 12].item() - corr[6, 18].item()) < 0.02
    assert abs(loop.std().item() - 1) < 0.01 and torch.equal(progressive_noise(noise, 0.0), noise)


def test_camera_noise_correlates_views_by_the_angle_between_their_cameras():
    yaws, pitches = np.array([-40.0, -30, 0, 20, 40, -30, 0]), np.array([0.0, 0, 0, 10, 0, 0, 25])
    labels = camera_labels(yaws, pitches)
    noise = torch.randn(7, 4, 96, 96, generator=torch.Generator().manual_seed(0))
    out = camera_noise(noise, labels, 0.8)
    pos = labels[:, [3, 7, 11]] / np.linalg.norm(labels[:, [3, 7, 11]], axis=1, keepdims=True)
    angle = np.degrees(np.arccos(np.clip(pos @ pos.T, -1, 1)))
    assert abs(angle[0, 4] - 80) < 1e-6 and abs(angle[2, 6] - 25) < 1e-6  # yaw and pitch both count
    root = camera_noise(torch.eye(7, dtype=torch.float64), labels, 0.8)  # noise = S z, so z = I gives S
    np.testing.assert_allclose((root @ root.T).numpy(), 0.8 ** (angle / 10), rtol=0, atol=1e-7)  # S S^T: the kernel
    np.testing.assert_allclose(torch.corrcoef(out.flatten(1)).numpy(), 0.8 ** (angle / 10), atol=0.03)  # and on samples
    torch.testing.assert_close(out[1], out[5], rtol=0, atol=1e-5)  # the same camera twice: the same noise
    assert abs(out.std().item() - 1) < 0.01
    plan = ViewPlan.parse("shifted+camera=0.8")  # without cameras: along the path, views taken as 10 degrees apart
    torch.testing.assert_close(plan.noise_prior(7)(noise), progressive_noise(noise, 0.8))
    torch.testing.assert_close(plan.noise_prior(7, labels=labels)(noise), out)


def test_closed_paths_are_detected_and_anchors_spread_over_them():
    assert not is_closed_path(camera_labels(np.linspace(-40, 40, 16), np.zeros(16)))
    assert is_closed_path(camera_labels(np.arange(32) * 360 / 32 - 180, np.zeros(32)))  # 360, stops one step short
    k = np.arange(32)
    assert is_closed_path(camera_labels(40 - 80 * np.abs(1 - k / 16), np.zeros(32)))  # back and forth
    assert anchor_indices(32, 4) == [0, 10, 21, 31] and anchor_indices(32, 4, loop=True) == [0, 8, 16, 24]


def test_the_default_is_a_valid_plan_and_the_cli_help_names_it():
    import argparse

    from diffportrait3d.cli.common import add_view_plan_args
    from diffportrait3d.pipeline.view_windows import DEFAULT, plan_for

    parser = argparse.ArgumentParser()
    add_view_plan_args(parser)
    assert f"(default {DEFAULT})" in " ".join(parser.format_help().split())
    assert plan_for(None, 8, 16)[0] == ViewPlan.parse(DEFAULT) and plan_for(None, 8, 8)[0] == ViewPlan("groups")


def test_plan_names_parse_and_bad_names_are_user_errors():
    p = ViewPlan.parse("windows+freenoise+anchors", group_size=4)
    assert (p.method, p.noise, p.anchors, p.group_size, p.name) == ("windows", "freenoise", 4, 4, "windows+freenoise+anchors")
    with pytest.raises(UserError, match="view method"):
        ViewPlan.parse("sliding")
    with pytest.raises(UserError, match="unknown view option"):
        ViewPlan.parse("groups+magic")
    p = ViewPlan.parse("shifted+progressive=0.8")
    assert (p.noise, p.correlation, p.noise_correlation, p.name) == ("progressive", 0.8, 0.8, "shifted+progressive=0.8")
    assert ViewPlan.parse("shifted+mixed").noise_correlation == 0.5 and ViewPlan.parse("shifted+mixed").name == "shifted+mixed"
    for bad, why in (("shifted+progressive=x", "must be a number"), ("shifted+progressive=1", "in \\[0, 1\\), got 1.0"),
                     ("shifted+freenoise=0.5", "unknown view option"), ("groups+anchors=3", "unknown view option")):
        with pytest.raises(UserError, match=why):
            ViewPlan.parse(bad)


# -- on the tiny pipeline ------------------------------------------------------------------------

def make_pipe(perturb: bool) -> DiffPortrait3DPipeline:
    pipe = DiffPortrait3DPipeline(**preset_components("tiny", seed=0))
    pipe.set_progress_bar_config(disable=True)
    if perturb:  # trained view modules are not identities: give every one a random output projection
        torch.manual_seed(1)
        for m in pipe.view_modules.modules():
            if isinstance(m, ViewTransformer):
                torch.nn.init.normal_(m.proj_out.weight, std=0.3)
    return pipe


@pytest.fixture(scope="module")
def perturbed():
    return make_pipe(True)


def inputs(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    ref = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    conds = torch.rand(n, 3, 64, 64, generator=g) * 2 - 1
    x_t = torch.randn(n, 4, 8, 8, generator=g)
    return ref, conds, x_t


def render(pipe, n, views, group_size, steps=2):
    ref, conds, x_t = inputs(n)
    return pipe(ref, conds, latents=x_t, num_inference_steps=steps, eta=0.0, views=views, group_size=group_size,
                output_type="latent").images


def test_a_window_covering_all_views_equals_one_big_group(perturbed):
    big = render(perturbed, 6, "groups", 6)
    for views in ("windows", "shifted", ViewPlan("windows", group_size=8, overlap=7, loop=True)):
        assert torch.equal(render(perturbed, 6, views, 8), big)
    # fusing copies of the full window (triangular weights, normalised) gives the full window's eps
    ref, conds, x = inputs(6)
    nets, ctx = perturbed.networks, perturbed.prompt_embedding()
    ref_latents = perturbed.encode(ref)
    t = torch.tensor(501)
    bank = shared_reference_bank(nets, ref_latents, t, ctx)
    eps = lambda w: guided_eps(nets, x[w], t, ctx, ref_latents, conds[w], bank=bank)[0]  # noqa: E731
    with torch.no_grad():
        torch.testing.assert_close(fuse(eps, x, [list(range(6))] * 3), eps(torch.arange(6)), rtol=0, atol=1e-5)


def test_windows_without_overlap_are_the_groups_across_several_groups(perturbed):
    """12 views, groups of 4 (three groups), view modules that are not identities: windows that share no
    view are the release's independent groups, bitwise; one shared view already changes the views."""
    groups = render(perturbed, 12, "groups", 4)
    assert torch.equal(render(perturbed, 12, ViewPlan("windows", group_size=4, overlap=0, loop=False), 4), groups)
    assert (render(perturbed, 12, ViewPlan("windows", group_size=4, overlap=1, loop=False), 4) - groups).abs().max() > 1e-3


def test_overlap_matters_only_through_the_view_modules(perturbed):
    """Identity view modules (untrained): every schedule gives the same views. Perturbed modules: the
    overlapping and shifted schedules change them, most near the group boundary (views 3|4)."""
    identity = make_pipe(False)
    base = render(identity, 8, "groups", 4)
    for views in ("windows", "shifted", "windows+freenoise"):
        assert (render(identity, 8, views, 4) - base).abs().max().item() <= 1e-5
    groups = render(perturbed, 8, "groups", 4)
    for views in ("windows", "shifted"):  # shifted: step 0 is plain groups, the boundaries move at step 1
        diff = (render(perturbed, 8, views, 4) - groups).abs().flatten(1).mean(1)
        assert diff.max().item() > 1e-3, views  # 100x the identity case's bound
        if views == "windows":  # windows [0..3] [3..6] [4..7]: views 0-2 change only through view 3
            assert diff[3] > 10 * diff[:3].max()
    # exact mode keeps the release's semantics: a 4+4 split equals two separate runs of 4
    ref, conds, x_t = inputs(8)
    first = perturbed(ref, conds[:4], latents=x_t[:4], num_inference_steps=2, eta=0.0, views="groups", group_size=4,
                      output_type="latent").images
    torch.testing.assert_close(groups[:4], first, rtol=0, atol=1e-5)


def test_the_noise_prior_shapes_the_initial_and_the_step_noise_of_the_pipeline(perturbed):
    """views="...+camera" renders exactly what the same draws, correlated by hand, render as latents and
    recorded DDIM step noise (eta 0.5); without its prior the same draws give other views."""
    ref, conds, _ = inputs(10)
    labels = camera_labels(np.linspace(-40, 40, 10), np.zeros(10))
    run = dict(num_inference_steps=3, eta=0.5, group_size=4, proxy_images=None, condition_labels=labels, output_type="latent")
    out = perturbed(ref, conds, views="shifted+camera=0.7", generator=torch.Generator().manual_seed(3), **run).images
    g = torch.Generator().manual_seed(3)
    z, steps = torch.randn(10, 4, 8, 8, generator=g), torch.stack([torch.randn(10, 4, 8, 8, generator=g) for _ in range(3)])
    by_hand = perturbed(ref, conds, views="shifted", latents=camera_noise(z, labels, 0.7),
                        step_noise=torch.stack([camera_noise(s, labels, 0.7) for s in steps]), **run).images
    torch.testing.assert_close(out, by_hand, rtol=0, atol=1e-6)
    plain = perturbed(ref, conds, views="shifted", latents=z, step_noise=steps, **run).images
    assert (out - plain).abs().mean() > 0.1


def test_anchors_become_extra_references(perturbed):
    ref, conds, _ = inputs(10)
    seen = []
    orig = perturbed.encode

    def spy(images, *a, **kw):
        seen.append(images.shape[0])
        return orig(images, *a, **kw)

    perturbed.encode = spy
    try:
        out = perturbed(ref, conds, num_inference_steps=2, views="groups+anchors", group_size=4,
                        generator=torch.Generator().manual_seed(0), output_type="pt").images
    finally:
        del perturbed.encode
    assert seen == [1, 5] and out.shape == (10, 3, 64, 64)  # anchor pass on 1 reference, then 1 + 4 anchors
