"""EG3D camera conventions: 25-float labels, look-at poses, rays and projection.

A camera label is what EG3D, PanoHead, GOAE and TriPlaneNet store in `dataset.json`: the 4x4
camera-to-world matrix flattened row-major (so the camera centre is at indices 3, 7, 11), then
the 3x3 intrinsics normalised by image size (focal 4.2647, principal point 0.5), flattened.
The camera frame is OpenCV's: +x right and +y down in the image, +z forward along the view.
The world is y-up and the subject faces +z (a frontal camera sits on +z looking towards -z).

Angles (degrees), chosen to match EG3D's LookAtPoseSampler with horizontal = pi/2 + yaw:
- yaw > 0 moves the camera towards world +x, the subject's LEFT (our right when we face them);
  the subject then appears turned towards image left, so the nose moves left in the image.
- pitch > 0 raises the camera above the head (it looks down at the face).
- like EG3D, the camera centre lies on a sphere of `radius` around the WORLD ORIGIN and looks at
  `lookat` (0, 0, 0.2), so `radius` is |centre|, not the distance to the look-at point.
EG3D samples its vertical angle uniformly on the sphere (v -> arccos(1 - 2v/pi)); our pitch is
the plain elevation angle. `from_eg3d_angles` converts EG3D's (horizontal, vertical) pair.
"""

import math

import numpy as np

from ..errors import UserError

FOCAL = 4.2647  # normalised focal length of EG3D's FFHQ cameras (about 18.8 degrees field of view)
RADIUS = 2.7
LOOKAT = (0.0, 0.0, 0.2)


def intrinsics(focal: float = FOCAL) -> np.ndarray:
    """Normalised 3x3 intrinsics: pixel (u, v) / resolution = (f x/z + 0.5, f y/z + 0.5)."""
    return np.array([[focal, 0.0, 0.5], [0.0, focal, 0.5], [0.0, 0.0, 1.0]])


def camera_origin(yaw_deg, pitch_deg, radius=RADIUS) -> np.ndarray:
    """Camera centre(s) on the orbit sphere around the world origin, shape (..., 3)."""
    yaw, pitch = np.radians(np.asarray(yaw_deg, float)), np.radians(np.asarray(pitch_deg, float))
    radius = np.asarray(radius, float)
    return np.stack([radius * np.cos(pitch) * np.sin(yaw), radius * np.sin(pitch),
                     radius * np.cos(pitch) * np.cos(yaw)], axis=-1)


def look_at(origin, target=LOOKAT) -> np.ndarray:
    """4x4 cam2world of a camera at `origin` looking at `target`, world up = +y, no roll.

    Same construction as EG3D's create_cam2world_matrix: columns are right, down, forward.
    """
    origin, target = np.asarray(origin, float), np.asarray(target, float)
    forward = target - origin
    forward = forward / np.linalg.norm(forward)
    right = -np.cross([0.0, 1.0, 0.0], forward)
    norm = np.linalg.norm(right)
    if norm < 1e-9:
        raise UserError("camera looks straight up or down; keep |pitch| below 90 degrees")
    right = right / norm
    down = np.cross(forward, right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, down, forward, origin
    return m


def camera_label(yaw_deg: float, pitch_deg: float = 0.0, radius: float = RADIUS,
                 lookat=LOOKAT, focal: float = FOCAL) -> np.ndarray:
    """The 25-float EG3D label of an orbit camera (float64)."""
    if not -90.0 < pitch_deg < 90.0:
        raise UserError(f"pitch must be within (-90, 90) degrees, got {pitch_deg}")
    if radius <= 0:
        raise UserError(f"camera radius must be positive, got {radius}")
    c2w = look_at(camera_origin(yaw_deg, pitch_deg, radius), lookat)
    return np.concatenate([c2w.reshape(-1), intrinsics(focal).reshape(-1)])


def camera_labels(yaws, pitches, radius: float = RADIUS, **kw) -> np.ndarray:
    """Labels for paired sequences of angles, shape (N, 25)."""
    return np.stack([camera_label(float(y), float(p), radius, **kw) for y, p in zip(yaws, pitches)])


def check_label(label) -> np.ndarray:
    label = np.asarray(label, dtype=np.float64)
    if label.shape[-1:] != (25,) or not np.all(np.isfinite(label)):
        raise UserError(f"a camera label is 25 finite floats (4x4 cam2world + 3x3 intrinsics); got shape {label.shape}")
    return label


def split_label(label) -> tuple[np.ndarray, np.ndarray]:
    """label (..., 25) -> cam2world (..., 4, 4), intrinsics (..., 3, 3)."""
    label = check_label(label)
    return label[..., :16].reshape(*label.shape[:-1], 4, 4), label[..., 16:].reshape(*label.shape[:-1], 3, 3)


def camera_centres(labels) -> np.ndarray:
    """Camera centres (N, 3) of labels (N, 25): the cam2world translation, a float64 copy."""
    c2w, _ = split_label(np.asarray(labels, dtype=np.float64).reshape(-1, 25))
    return c2w[:, :3, 3].copy()


def label_to_angles(label):
    """Invert `camera_label`: (yaw_deg, pitch_deg, radius) of the camera centre.

    Works on one label (floats back) or a batch (N, 25) (arrays back).
    """
    c2w, _ = split_label(label)
    c = c2w[..., :3, 3]
    radius = np.linalg.norm(c, axis=-1)
    yaw = np.degrees(np.arctan2(c[..., 0], c[..., 2]))
    pitch = np.degrees(np.arcsin(np.clip(c[..., 1] / np.maximum(radius, 1e-12), -1, 1)))
    if np.ndim(yaw) == 0:
        return float(yaw), float(pitch), float(radius)
    return yaw, pitch, radius


def from_eg3d_angles(horizontal: float, vertical: float) -> tuple[float, float]:
    """EG3D LookAtPoseSampler (horizontal, vertical) radians -> our (yaw, pitch) degrees."""
    v = min(max(vertical, 1e-5), math.pi - 1e-5) / math.pi
    phi = math.acos(1 - 2 * v)  # polar angle from +y
    return math.degrees(horizontal - math.pi / 2), math.degrees(math.pi / 2 - phi)


def pixel_rays(label, res: int) -> tuple[np.ndarray, np.ndarray]:
    """Ray origin (3,) and unit directions (res, res, 3) through pixel centres, as EG3D's RaySampler.

    Pixel (row i, column j) samples normalised coordinates u = (j + 0.5)/res, v = (i + 0.5)/res.
    """
    c2w, k = split_label(label)
    fx, fy, cx, cy, sk = k[0, 0], k[1, 1], k[0, 2], k[1, 2], k[0, 1]
    uv = (np.arange(res) + 0.5) / res
    v, u = np.meshgrid(uv, uv, indexing="ij")
    x = (u - cx + cy * sk / fy - sk * v / fy) / fx
    y = (v - cy) / fy
    cam = np.stack([x, y, np.ones_like(x)], axis=-1)
    d = cam @ c2w[:3, :3].T
    return c2w[:3, 3].copy(), d / np.linalg.norm(d, axis=-1, keepdims=True)


def project(points, label, res: int = 1) -> np.ndarray:
    """World points (..., 3) -> pixel coordinates (..., 2) as (x = column, y = row), continuous.

    Pixel centres sit at integer + 0.5, matching `pixel_rays`. With res=1 the result is normalised.
    """
    c2w, k = split_label(label)
    w2c = np.linalg.inv(c2w)
    p = np.asarray(points, float)
    cam = p @ w2c[:3, :3].T + w2c[:3, 3]
    uvw = cam @ k.T
    return uvw[..., :2] / uvw[..., 2:3] * res
