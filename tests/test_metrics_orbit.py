"""Orbit consistency metrics on synthetic sequences with known answers."""

import pytest
import torch

from diffportrait3d.metrics.orbit import flicker_ratio, loop_closure, orbit_metrics, seam_ratio, view_changes


def stripes(n: int, shift: float = 1.0, width: int = 32) -> torch.Tensor:
    """A sine pattern moving `shift` pixels per view (periodic in x: a turntable of period width/shift views)."""
    x = torch.arange(width, dtype=torch.float64)
    frames = [torch.sin(2 * torch.pi * (x - k * shift) / width) for k in range(n)]
    return torch.stack(frames).float()[:, None, None, :].expand(n, 3, 8, width).contiguous()


def test_seam_ratio_is_one_on_a_smooth_sequence_and_large_with_a_jump():
    smooth = stripes(24)
    assert view_changes(smooth).std() < 1e-4  # evenly spaced changes
    assert seam_ratio(smooth, 8) == pytest.approx(1.0, abs=1e-3)
    jumpy = smooth.clone()
    jumpy[8:16] = stripes(24, shift=1.0)[8:16].roll(5, dims=-1)  # the second group is off by 5 pixels
    assert seam_ratio(jumpy, 8) > 4.0
    # the same jump inside a group is not at a seam
    assert seam_ratio(jumpy, 12) == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ValueError, match="more views than one group"):
        seam_ratio(smooth[:8], 8)


def test_loop_closure_is_one_when_the_orbit_returns_and_large_when_it_does_not():
    closed = stripes(32)  # view 32 would equal view 0: the last view is one step before the first
    assert loop_closure(closed) == pytest.approx(1.0, abs=1e-3)
    assert loop_closure(stripes(16)) > 5.0  # half a period: the end is far from the start


def test_flicker_ratio_is_one_against_itself_and_grows_with_jitter():
    truth = stripes(16)
    assert flicker_ratio(truth, truth) == pytest.approx(1.0)
    noisy = truth + 0.2 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(0))
    assert flicker_ratio(noisy, truth) > 2.0
    m = orbit_metrics(noisy, 8, truth, closed=True)
    assert set(m) == {"seam ratio", "loop closure", "flicker ratio"}
    assert set(orbit_metrics(truth[:8], 8)) == set()
