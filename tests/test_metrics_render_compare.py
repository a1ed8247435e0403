"""Render-and-compare pose and identity retrieval with a toy renderer: a soft coloured ellipse
whose position follows (yaw, pitch) and whose colour and shape are the identity."""

import numpy as np
import pytest
import torch

from diffportrait3d.metrics.render_compare import identity_retrieval, render_compare_pose, render_pose_error

torch.set_num_threads(1)

RES = 48
IDENTITIES = [((0.9, 0.2, 0.1), 6.0, 9.0), ((0.1, 0.8, 0.3), 8.0, 7.0), ((0.2, 0.3, 0.9), 5.0, 5.0), ((0.9, 0.9, 0.2), 9.0, 10.0)]


def toy_render(identity: int, yaw: float, pitch: float) -> torch.Tensor:
    """(3, RES, RES) in [-1, 1]: the ellipse moves 0.3 px per degree of yaw (right) and pitch (down)."""
    colour, sx, sy = IDENTITIES[identity]
    ys, xs = torch.meshgrid(torch.arange(RES, dtype=torch.float64), torch.arange(RES, dtype=torch.float64), indexing="ij")
    cx, cy = RES / 2 + 0.3 * yaw, RES / 2 + 0.3 * pitch
    blob = torch.exp(-((xs - cx) ** 2 / (2 * sx**2) + (ys - cy) ** 2 / (2 * sy**2)))
    return (torch.tensor(colour, dtype=torch.float64).view(3, 1, 1) * blob * 2 - 1).float()


def renderer(identity: int):
    return lambda yaw, pitch: (toy_render(identity, yaw, pitch), None)  # (image, mask) like the renderer package


def test_render_compare_finds_off_grid_poses():
    g = torch.Generator().manual_seed(0)
    for identity, (yaw, pitch) in enumerate([(23.3, -7.7), (-41.0, 12.4), (0.0, 0.0), (55.2, 26.1)]):
        image = toy_render(identity, yaw, pitch) + 0.05 * torch.randn(3, RES, RES, generator=g)
        est_yaw, est_pitch, dist = render_compare_pose(image, renderer(identity), refine_to=0.25)
        assert (est_yaw, est_pitch) == pytest.approx((yaw, pitch), abs=0.6), (identity, est_yaw, est_pitch)


def test_the_refinement_stays_inside_the_grid():
    # the best match lies past the grid's edge (yaw 75 > 60, pitch -38 < -30): the estimate is the nearest pose
    # inside it, as the grid's corner cell refined along its edges, never a camera the caller did not ask about
    image = toy_render(0, 75.0, -38.0)
    yaw, pitch, _ = render_compare_pose(image, renderer(0), refine_to=0.25)
    assert (yaw, pitch) == (60.0, -30.0)
    yaw, pitch, _ = render_compare_pose(image, renderer(0), yaws=range(-90, 91, 15), refine_to=0.25)
    assert yaw == pytest.approx(75.0, abs=1.0) and pitch == -30.0


def test_render_pose_error_is_the_angle_distance():
    targets = np.array([[20.0, 10.0], [-30.0, 0.0]])
    truth = np.array([[20.0, 10.0], [-26.0, 3.0]])  # the second image is off by (4, 3): error 5
    gen = torch.stack([toy_render(i, *t) for i, t in enumerate(truth)])
    r = render_pose_error(gen, targets, [renderer(0), renderer(1)])
    assert r.per_image == pytest.approx([0.0, 5.0], abs=0.3)
    assert r.value == pytest.approx(2.5, abs=0.2)


def test_identity_retrieval_top1():
    g = torch.Generator().manual_seed(1)
    cams = [(10.0, 0.0), (-20.0, 5.0), (30.0, -10.0), (0.0, 15.0)]
    gallery = torch.stack([torch.stack([toy_render(k, *c) for k in range(4)]) for c in cams])  # (N, K, 3, H, W)
    own = torch.tensor([0, 1, 2, 3])
    gen = torch.stack([toy_render(i, *c) for i, c in enumerate(cams)]) + 0.1 * torch.randn(4, 3, RES, RES, generator=g)
    r = identity_retrieval(gen, gallery, own)
    assert r.value == 1.0 and r.per_image == [1.0] * 4
    swapped = gen[[1, 0, 2, 3]]  # images 0 and 1 now show each other's identity
    r = identity_retrieval(swapped, gallery, own)
    assert r.per_image == [0.0, 0.0, 1.0, 1.0] and r.value == 0.5


def test_identity_retrieval_checks_shapes():
    with pytest.raises(ValueError, match=r"\(N, K, 3, H, W\)"):
        identity_retrieval(torch.zeros(2, 3, 8, 8), torch.zeros(3, 4, 3, 8, 8), [0, 0])
