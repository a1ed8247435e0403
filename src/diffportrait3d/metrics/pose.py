"""POSE: the L2 error of (pitch, yaw, roll) estimated from generated vs ground-truth images.

The estimator is `diffportrait3d.faces.pose.head_pose` (dlib's 68 landmarks fitted by a 14-point
3D face model with expression freedom and several starts, so it does not flip to the mirrored
solution); its errors are measured by benchmarks/bench_head_pose.py. Camera: a pinhole at the
image centre with focal length `focal` in pixels (default the width; pass FOCAL x width for
EG3D-framed images, as `dp3d evaluate` does). Absolute angles carry the generic model's bias,
which largely cancels in POSE because generated and ground truth go through the same estimator.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import MetricUnavailable
from ..faces.pose import LANDMARK_IDS, MODEL_POINTS, camera_matrix, euler_from_matrix, head_pose, matrix_from_euler
from .base import MetricResult, check_images, check_pair, to_uint8_hwc

__all__ = ["LANDMARK_IDS", "MODEL_POINTS", "camera_matrix", "euler_from_matrix", "matrix_from_euler", "pose_from_landmarks",
           "estimate_pose", "pose_error"]
pose_from_landmarks = head_pose


def estimate_pose(images: torch.Tensor, focal: float | None = None) -> list[tuple[float, float, float] | None]:
    """(pitch, yaw, roll) degrees per image, None where dlib finds no face. Images (N, 3, H, W) in [-1, 1]."""
    from ..faces.dlib_models import dlib_faces

    try:
        faces = dlib_faces()
    except MetricUnavailable as e:
        raise MetricUnavailable("POSE", e.reason) from None
    out = []
    for img in to_uint8_hwc(check_images(images)):
        lm = faces.landmarks(img)
        out.append(None if lm is None else pose_from_landmarks(lm, img.shape[1], img.shape[0], focal))
    return out


def pose_error(generated: torch.Tensor, target: torch.Tensor, focal: float | None = None) -> MetricResult:
    """POSE: L2 norm of the (pitch, yaw, roll) difference in degrees, per pair; lower is better."""
    x, y = check_pair(generated, target)
    pg, pt = estimate_pose(x, focal), estimate_pose(y, focal)
    values = [None if a is None or b is None else float(np.linalg.norm(np.subtract(a, b))) for a, b in zip(pg, pt)]
    miss_g, miss_t = sum(a is None for a in pg), sum(b is None for b in pt)
    reason = None
    if miss_g or miss_t:
        reason = f"no face found in {miss_g} of {len(pg)} generated and {miss_t} of {len(pt)} ground-truth images"
    return MetricResult.from_values("POSE", values, backend="dlib-68 + 14-point face model with expression freedom, multi-start", reason=reason)
