"""Metrics for the miniature world, where face detectors see no face: compare against renders.

Both metrics take the renderer as an injected callable, so they do not depend on the renderer
package: `render(yaw, pitch) -> (3, H, W)` tensor in [-1, 1] (or an `(image, mask)` tuple, of
which the image is used) showing the known identity from that camera. Angles are in whatever
unit the callable takes (degrees by default grids); the renderer decides the sign conventions.

- Render-and-compare pose: the (yaw, pitch) whose render matches the generated image best,
  found on a grid and then refined by a pattern search (step halving) around the best cell.
  POSE error is the L2 norm of the (yaw, pitch) difference to the target camera.
- Identity retrieval: for each generated view and a gallery of K candidate identities rendered
  at the same camera, is the nearest candidate its own identity (top-1 accuracy)?

The image distance is injectable; the default is the mean squared error on [-1, 1].
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from .base import MetricResult, check_images

Renderer = Callable[[float, float], torch.Tensor]
Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

DEFAULT_YAWS = tuple(range(-60, 61, 10))
DEFAULT_PITCHES = tuple(range(-30, 31, 10))


def mse_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) x2 -> (N,) mean squared error."""
    return ((a.float() - b.float()) ** 2).mean(dim=(1, 2, 3))


def _render(render: Renderer, yaw: float, pitch: float) -> torch.Tensor:
    out = render(yaw, pitch)
    if isinstance(out, (tuple, list)):
        out = out[0]
    return check_images(out)


def render_compare_pose(image: torch.Tensor, render: Renderer, yaws: Sequence[float] = DEFAULT_YAWS,
                        pitches: Sequence[float] = DEFAULT_PITCHES, refine_to: float = 0.5,
                        distance: Distance = mse_distance) -> tuple[float, float, float]:
    """(yaw, pitch, distance) of the render closest to `image` ((3, H, W) or (1, 3, H, W) in [-1, 1]).

    Grid search over yaws x pitches, then a pattern search from the best cell with a step of half
    the grid spacing, halved until it is below `refine_to` (0 or None: no refinement). The search stays
    inside the grid's range: on a poor image it used to walk past it, to cameras behind the head (yaw -131,
    pitch 41 from a grid of -90..90 x -15..15) whose featureless renders an unsharp view resembles most.
    """
    x = check_images(image)[:1]
    cache: dict[tuple[float, float], float] = {}

    def cost(yaw: float, pitch: float) -> float:
        key = (round(float(yaw), 6), round(float(pitch), 6))
        if key not in cache:
            r = _render(render, *key)
            if r.shape[-2:] != x.shape[-2:]:
                r = torch.nn.functional.interpolate(r.float(), size=x.shape[-2:], mode="bilinear", align_corners=False)
            cache[key] = float(distance(x, r)[0])
        return cache[key]

    best = min(((y, p) for y in yaws for p in pitches), key=lambda yp: cost(*yp))
    if refine_to:
        step = 0.5 * min(_spacing(yaws), _spacing(pitches))
        (y_lo, y_hi), (p_lo, p_hi) = (min(yaws), max(yaws)), (min(pitches), max(pitches))
        while step >= refine_to:
            moves = [(best[0] + dy * step, best[1] + dp * step) for dy, dp in ((1, 0), (-1, 0), (0, 1), (0, -1))]
            moves = [(y, p) for y, p in moves if y_lo <= y <= y_hi and p_lo <= p <= p_hi]
            cand = min(moves, key=lambda yp: cost(*yp), default=best)
            if cost(*cand) < cost(*best):
                best = cand
            else:
                step /= 2
    return float(best[0]), float(best[1]), cost(*best)


def _spacing(values: Sequence[float]) -> float:
    v = np.unique(np.asarray(values, np.float64))
    return float(np.diff(v).min()) if len(v) > 1 else 10.0


def render_pose_error(generated: torch.Tensor, target_angles, renderers: Sequence[Renderer], **search) -> MetricResult:
    """POSE for the miniature world: L2 of (yaw, pitch) estimated by render-and-compare minus the
    target camera's (yaw, pitch), per image. `renderers[i]` renders image i's identity;
    `target_angles` is (N, 2) (yaw, pitch). Extra keyword arguments go to `render_compare_pose`."""
    x = check_images(generated)
    target = np.asarray(target_angles, np.float64).reshape(-1, 2)
    if not (len(x) == len(target) == len(renderers)):
        raise ValueError(f"need one target angle pair and one renderer per image: {len(x)} images, "
                         f"{len(target)} angles, {len(renderers)} renderers")
    values = []
    for img, (ty, tp), render in zip(x, target, renderers):
        yaw, pitch, _ = render_compare_pose(img, render, **search)
        values.append(float(np.hypot(yaw - ty, pitch - tp)))
    return MetricResult.from_values("POSE", values, backend="render-and-compare (yaw, pitch)")


def identity_retrieval(generated: torch.Tensor, gallery: torch.Tensor, own_index, distance: Distance = mse_distance) -> MetricResult:
    """Top-1 identity retrieval accuracy (per image 1.0 or 0.0), higher is better.

    generated: (N, 3, H, W); gallery: (N, K, 3, H, W), K candidate identities rendered at image
    i's camera; own_index: (N,) position of image i's own identity among its K candidates.
    """
    x = check_images(generated)
    if gallery.ndim != 5 or gallery.shape[0] != len(x) or gallery.shape[2:] != x.shape[1:]:
        raise ValueError(f"gallery must be (N, K, 3, H, W) with N={len(x)} and images {tuple(x.shape[1:])}, got {tuple(gallery.shape)}")
    own = torch.as_tensor(own_index).reshape(-1)
    n, k = gallery.shape[:2]
    d = distance(x.repeat_interleave(k, 0), gallery.reshape(n * k, *gallery.shape[2:])).reshape(n, k)
    hits = (d.argmin(dim=1) == own).double()
    return MetricResult.from_values("ID-retrieval", hits, backend=f"top-1 of {k} rendered identities")
