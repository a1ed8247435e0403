"""Head pose (pitch, yaw, roll) from dlib's 68 landmarks and cv2.solvePnP; the POSE error.

3D reference: the 14-point anthropometric face model (ISR Coimbra's glAnthropometric3DModel, as
used by lincolnhard/head-pose-estimation) for dlib landmarks 17, 21, 22, 26 (brow corners),
36, 39, 42, 45 (eye corners), 31, 35 (nostrils), 48, 54 (mouth corners), 57 (lower lip), 8 (chin),
converted to the OpenCV camera frame (x right, y down, z away from the viewer), so that a face
looking straight into the camera has rotation I.

Angles (degrees) are the Euler angles of the head rotation R = Rz(roll) Ry(yaw) Rx(pitch) in that
frame: roll > 0 tilts the head clockwise in the image, yaw > 0 turns the face toward the image's
left, pitch > 0 tips the face downward. With roll outermost, rotating the image in-plane about
its centre by theta changes roll by exactly -theta (counter-clockwise theta) and leaves pitch
and yaw alone; a horizontal flip negates yaw and roll.

Camera: a pinhole at the image centre with focal length `focal` (pixels; default the image
width, about 53 degrees field of view; pass EG3D's 4.2647 x width for its crops).

Measured accuracy (tests/test_metrics_pose.py, on scikit-image's astronaut and matplotlib's
Grace Hopper photos): under in-plane rotations of +-10, 20, 30 degrees the roll follows the
rotation to within 0.78 degrees while pitch and yaw drift by up to 2.8 degrees; under a
horizontal flip yaw and roll change sign to within 1.8 degrees and pitch moves by up to 3.9
degrees. So the estimator's own noise floor for POSE is about 3-4 degrees (L2 of the three);
on synthetic projections of the model points it is exact (< 1e-4 degrees). The absolute angles
carry the generic model's bias (a frontal photo can read 10-20 degrees of pitch), which cancels
in POSE because generated and ground truth go through the same estimator.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .base import MetricResult, MetricUnavailable, check_images, check_pair, to_uint8_hwc
from ..faces.dlib_models import require_cv2

LANDMARK_IDS = [17, 21, 22, 26, 36, 39, 42, 45, 31, 35, 48, 54, 57, 8]

# the published model has x toward the image left, y up, z toward the viewer; negate all three
_ANTHROPOMETRIC_14 = np.array([
    [6.825897, 6.760612, 4.402142], [1.330353, 7.122144, 6.903745],
    [-1.330353, 7.122144, 6.903745], [-6.825897, 6.760612, 4.402142],
    [5.311432, 5.485328, 3.987654], [1.789930, 5.393625, 4.413414],
    [-1.789930, 5.393625, 4.413414], [-5.311432, 5.485328, 3.987654],
    [2.005628, 1.409845, 6.165652], [-2.005628, 1.409845, 6.165652],
    [2.774015, -2.080775, 5.048531], [-2.774015, -2.080775, 5.048531],
    [0.000000, -3.116408, 6.097667], [0.000000, -7.415691, 4.070434],
])
MODEL_POINTS = -_ANTHROPOMETRIC_14


def camera_matrix(width: int, height: int, focal: float | None = None) -> np.ndarray:
    f = float(width if focal is None else focal)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=np.float64)


def euler_from_matrix(r: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in degrees with R = Rz(roll) Ry(yaw) Rx(pitch)."""
    pitch = math.atan2(r[2, 1], r[2, 2])
    yaw = math.atan2(-r[2, 0], math.hypot(r[0, 0], r[1, 0]))
    roll = math.atan2(r[1, 0], r[0, 0])
    return tuple(math.degrees(a) for a in (pitch, yaw, roll))


def matrix_from_euler(pitch: float, yaw: float, roll: float) -> np.ndarray:
    p, y, r = (math.radians(a) for a in (pitch, yaw, roll))
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def pose_from_landmarks(landmarks: np.ndarray, width: int, height: int, focal: float | None = None) -> tuple[float, float, float]:
    """(pitch, yaw, roll) degrees from (68, 2) dlib landmarks (or (14, 2) points in LANDMARK_IDS order)."""
    cv2 = require_cv2("POSE")
    pts = np.asarray(landmarks, np.float64)
    if len(pts) == 68:
        pts = pts[LANDMARK_IDS]
    k = camera_matrix(width, height, focal)
    # start from a frontal head in front of the camera, then refine (Levenberg-Marquardt)
    rvec0 = np.zeros((3, 1))
    tvec0 = np.array([[0.0], [0.0], [k[0, 0] * 15.0 / max(np.ptp(pts[:, 0]), 1.0)]])
    ok, rvec, tvec = cv2.solvePnP(MODEL_POINTS, pts, k, None, rvec0, tvec0, True, cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        raise RuntimeError("solvePnP failed")
    return euler_from_matrix(cv2.Rodrigues(rvec)[0])


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
    return MetricResult.from_values("POSE", values, backend="dlib-68 + solvePnP (14-point anthropometric model)", reason=reason)
