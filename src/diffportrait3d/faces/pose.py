"""Head pose (pitch, yaw, roll) from dlib's 68 landmarks, and the EG3D camera that sees it.

The 3D reference is the 14-point anthropometric face model (ISR Coimbra's
glAnthropometric3DModel) for dlib landmarks 17, 21, 22, 26 (brow corners), 36, 39, 42, 45 (eye
corners), 31, 35 (nostrils), 48, 54 (mouth corners), 57 (lower lip), 8 (chin), in the OpenCV
camera frame (x right, y down, z away from the viewer): a face looking into the camera has R = I.

Why not one solvePnP from a frontal start: with a face that does not match the rigid model (an
open mouth drops the lip and chin, faces differ in height) the frontal pose becomes a saddle
and the solver slides to one of two mirrored minima (a frontal open-mouthed face read as
yaw -24.5, its mirror +21.2). So the fit here
- gives the model expression freedom: a vertical stretch of the face and a jaw drop of the lower
  lip and chin, held near neutral by a weak prior, so they absorb what the rigid model cannot;
- starts from several poses (yaw -45..45, pitch +-15) and keeps the lowest cost.

Angles (degrees) are the Euler angles of R = Rz(roll) Ry(yaw) Rx(pitch): roll > 0 tilts the head
clockwise in the image, yaw > 0 turns the face toward the image's left, pitch > 0 tips it down.
A horizontal flip negates yaw and roll; an in-plane rotation by theta (counter-clockwise)
changes roll by -theta. Measured errors: benchmarks/bench_head_pose.py.
"""

from __future__ import annotations

import math

import numpy as np

from ..cameras import FOCAL, LOOKAT, RADIUS, camera_label

LANDMARK_IDS = [17, 21, 22, 26, 36, 39, 42, 45, 31, 35, 48, 54, 57, 8]
JAW = np.array([i in (57, 8) for i in LANDMARK_IDS])  # the points an open mouth moves down

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
STARTS = [(p, y, 0.0) for y in (-45.0, -15.0, 15.0, 45.0) for p in (-15.0, 15.0)]
PRIOR = (0.5, 0.05)  # weight of (stretch - 1, jaw drop / model unit) against residuals in face widths


def camera_matrix(width: int, height: int, focal: float | None = None) -> np.ndarray:
    """Pinhole at the image centre; focal in pixels, default the width (pass FOCAL * width for EG3D crops)."""
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


def expressive_model(stretch: float = 1.0, jaw: float = 0.0) -> np.ndarray:
    """MODEL_POINTS stretched vertically by `stretch`, lower lip and chin dropped by `jaw` units."""
    m = MODEL_POINTS.copy()
    m[:, 1] *= stretch
    m[JAW, 1] += jaw
    return m


def head_pose(landmarks: np.ndarray, width: int, height: int, focal: float | None = None) -> tuple[float, float, float]:
    """(pitch, yaw, roll) degrees from (68, 2) dlib landmarks (or (14, 2) points in LANDMARK_IDS order)."""
    from scipy.optimize import least_squares
    from scipy.spatial.transform import Rotation

    pts = np.asarray(landmarks, np.float64)
    if len(pts) == 68:
        pts = pts[LANDMARK_IDS]
    k = camera_matrix(width, height, focal)
    f, centre = k[0, 0], k[:2, 2]
    span = max(float(np.ptp(pts[:, 0])), 1.0)

    def residuals(x):
        cam = expressive_model(x[6], x[7]) @ Rotation.from_rotvec(x[:3]).as_matrix().T + x[3:6]
        proj = cam[:, :2] / cam[:, 2:3] * f + centre
        return np.concatenate([((proj - pts) / span).ravel(), [PRIOR[0] * (x[6] - 1), PRIOR[1] * x[7]]])

    depth = f * 15.0 / span  # the model is about 15 units wide
    best = None
    for start in STARTS:
        x0 = np.concatenate([Rotation.from_matrix(matrix_from_euler(*start)).as_rotvec(),
                             [*((pts.mean(0) - centre) / f * depth), depth], [1.0, 0.0]])
        sol = least_squares(residuals, x0, method="lm")
        if best is None or sol.cost < best.cost:
            best = sol
    return euler_from_matrix(Rotation.from_rotvec(best.x[:3]).as_matrix())


def pose_of_label(label) -> tuple[float, float, float]:
    """(pitch, yaw, roll) an upright, forward-looking head shows to the camera of an EG3D label."""
    from ..cameras import split_label

    c2w, _ = split_label(label)
    # head frame (x = subject's left, y down, z into the head) in world axes is diag(1, -1, -1)
    return euler_from_matrix(c2w[:3, :3].T @ np.diag([1.0, -1.0, -1.0]))


def camera_from_pose(pitch: float, yaw: float, roll: float = 0.0, radius: float = RADIUS) -> np.ndarray:
    """The EG3D label of the orbit camera whose view of an upright head has this pose (roll ignored).

    The camera looks along R's third row (in head = world axes up to the flip); its centre is the
    point on the radius sphere from which that direction passes through the look-at point.
    """
    r = matrix_from_euler(pitch, yaw, roll) @ np.diag([1.0, -1.0, -1.0])  # world -> camera rotation
    forward = r[2]
    lookat = np.asarray(LOOKAT)
    # centre = lookat - s * forward with |centre| = radius
    b = float(lookat @ forward)
    s = b + math.sqrt(max(b * b - float(lookat @ lookat) + radius * radius, 0.0))
    centre = lookat - s * forward
    yaw_c = math.degrees(math.atan2(centre[0], centre[2]))
    pitch_c = math.degrees(math.asin(np.clip(centre[1] / radius, -1, 1)))
    return camera_label(yaw_c, pitch_c, radius, focal=FOCAL)
