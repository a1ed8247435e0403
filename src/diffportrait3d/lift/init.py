"""Where the Gaussians start: random points in the volume that every camera sees.

No masks are needed: the cameras alone bound the subject. The centre is the point nearest to all
optical axes (the look-at point of an orbit); candidates are drawn uniformly in a cube around it
as wide as the views' field at that distance, and those that project inside every image are kept.
Each starts as a small, faint, round Gaussian with the mean colour the views show at its centre.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..cameras import project, split_label
from .gaussians import Gaussians, colour_to_f_dc

START_OPACITY = 0.1


def scene_bounds(labels: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (3,) nearest to every camera's optical axis, and the half-width of the views there."""
    c2w, k = split_label(labels)
    origins, axes = c2w[:, :3, 3], c2w[:, :3, 2]
    # least squares: sum_i |(I - a a^T)(x - o_i)|^2 -> (sum P_i) x = sum P_i o_i
    proj = np.eye(3)[None] - axes[:, :, None] * axes[:, None, :]
    a, b = proj.sum(0), np.einsum("nij,nj->i", proj, origins)
    centre = np.linalg.lstsq(a, b, rcond=None)[0]
    dist = np.linalg.norm(origins - centre, axis=1)
    half = float(np.max(dist * 0.5 / k[:, 0, 0]))
    return centre, half


def inside_all_views(points: np.ndarray, labels: np.ndarray) -> np.ndarray:
    keep = np.ones(len(points), bool)
    for label in labels:
        uv = project(points, label)
        keep &= np.all((uv > 0) & (uv < 1), axis=-1)
    return keep


def initial_gaussians(images: torch.Tensor, labels: np.ndarray, count: int, seed: int = 0) -> Gaussians:
    """`count` Gaussians for views (V, 3, H, W) in [0, 1] with cameras (V, 25)."""
    rng = np.random.default_rng(seed)
    centre, half = scene_bounds(labels)
    points, drawn = np.zeros((0, 3)), 0
    for _ in range(50):
        cand = centre + rng.uniform(-half, half, (4 * count, 3))
        points, drawn = np.concatenate([points, cand[inside_all_views(cand, labels)]]), drawn + len(cand)
        if len(points) >= count:
            break
    if len(points) < count:
        raise ValueError("the cameras share no common view volume; are these views of one subject?")
    volume = (2 * half) ** 3 * len(points) / drawn  # of the part of the cube that every view sees
    points = points[:count]
    spacing = (volume / count) ** (1 / 3)
    colour = mean_colour(images, labels, points)
    quats = np.zeros((count, 4))
    quats[:, 0] = 1
    return Gaussians(points, np.full((count, 3), math.log(0.5 * spacing)), quats,
                     np.full(count, math.log(START_OPACITY / (1 - START_OPACITY))), colour_to_f_dc(colour))


def mean_colour(images: torch.Tensor, labels: np.ndarray, points: np.ndarray) -> torch.Tensor:
    """(N, 3): the views' colours at the points' projections, averaged over the views."""
    total = torch.zeros(len(points), 3)
    for image, label in zip(images, labels):
        uv = torch.tensor(project(points, label), dtype=torch.float32) * 2 - 1  # grid_sample's [-1, 1]
        total += F.grid_sample(image[None].float().cpu(), uv[None, None], align_corners=False)[0, :, 0].T
    return total / len(images)
