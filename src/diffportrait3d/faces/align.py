"""EG3D / FFHQ alignment of a portrait from dlib's 68 landmarks.

EG3D crops its FFHQ images (eg3d/dataset_preprocessing/ffhq, after Deep3DFaceRecon) by fitting
five landmarks (eye centres, nose tip, mouth corners) to a standard 3D face with a
weak-perspective least-squares fit ("POS"): the fit's scale s (pixels per face unit) and the
image point t where the face origin lands define a square of side 700/300 * s centred on t
(their 1024-pixel crop at 300 px per unit, centre-cropped to 700, resized to 512).
Like FFHQ (and unlike EG3D), we first undo the in-plane roll, with FFHQ's quad direction from
the eyes and the mouth, because our cameras never roll.

Idempotent by construction: the crop of an aligned image is the image itself, up to the
landmark detector's noise (measured in tests/test_align.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import UserError

# Deep3DFaceRecon's standard face (BFM mean, face units, y up): the subject's right eye (image
# left), left eye, nose tip, right and left mouth corners
STANDARD_FACE_5 = np.array([
    [-0.31148657, 0.29036078, 0.13377953],
    [0.30979887, 0.28972036, 0.13179526],
    [0.0032535, -0.04617932, 0.55244243],
    [-0.25216928, -0.38133916, 0.22405732],
    [0.2484662, -0.38128236, 0.22235769],
])
CROP_UNITS = 700 / 300  # side of EG3D's crop in face units


@dataclass
class Alignment:
    quad: np.ndarray  # (4, 2) source pixels of the crop's corners: top-left, bottom-left, bottom-right, top-right
    landmarks: np.ndarray  # (68, 2) in the source image, as dlib finds them (for the head pose)
    turned: int = 0  # degrees (counter-clockwise) the image was turned for dlib to find the face

    @property
    def side(self) -> float:
        return float(np.linalg.norm(self.quad[3] - self.quad[0]))

    @property
    def roll(self) -> float:
        """Degrees the crop is turned (counter-clockwise in the source image)."""
        d = self.quad[3] - self.quad[0]
        return math.degrees(math.atan2(-d[1], d[0]))

    def to_crop(self, points, size: int) -> np.ndarray:
        """Source pixel coordinates -> coordinates in the `size` x `size` crop."""
        ex, ey = (self.quad[3] - self.quad[0]) / self.side, (self.quad[1] - self.quad[0]) / self.side
        rel = np.asarray(points, float) - self.quad[0]
        return np.stack([rel @ ex, rel @ ey], axis=-1) * (size / self.side)

    def crop(self, img: Image.Image, size: int = 512) -> Image.Image:
        """The aligned square crop; outside the photo it mirrors the photo (no smeared edges)."""
        import cv2

        arr = np.asarray(img.convert("RGB"))
        scale = size / self.side
        dst = np.array([[0, 0], [0, size], [size, size]], np.float32)
        m = cv2.getAffineTransform(self.quad[:3].astype(np.float32), dst)
        # shrinking by more than 2x: pre-filter, or the warp aliases
        if scale < 0.5:
            k = 1 / scale
            arr = cv2.resize(arr, None, fx=1 / k, fy=1 / k, interpolation=cv2.INTER_AREA)
            m = m @ np.diag([k, k, 1.0])
        out = cv2.warpAffine(arr, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
        return Image.fromarray(out)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """dlib 68 -> the five points of STANDARD_FACE_5 (eye centre = mean of its corners, as EG3D)."""
    lm = np.asarray(landmarks, float)
    return np.stack([lm[[36, 39]].mean(0), lm[[42, 45]].mean(0), lm[30], lm[48], lm[54]])


def ffhq_roll(landmarks: np.ndarray) -> float:
    """Radians the face is turned in the image plane, from FFHQ's quad direction (eyes and mouth)."""
    lm = np.asarray(landmarks, float)
    eye_l, eye_r = lm[36:42].mean(0), lm[42:48].mean(0)
    eye_to_eye = eye_r - eye_l
    eye_to_mouth = (lm[48] + lm[54]) / 2 - (eye_l + eye_r) / 2
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    return math.atan2(x[1], x[0])


def fit_standard_face(points: np.ndarray) -> tuple[float, np.ndarray]:
    """Weak-perspective least squares (Deep3DFaceRecon's POS) of the five points (pixels, y down).

    Returns the scale (pixels per face unit) and the pixel where the face's origin projects.
    """
    x = STANDARD_FACE_5
    a = np.zeros((10, 8))
    a[0::2, :3], a[0::2, 3] = x, 1
    a[1::2, 4:7], a[1::2, 7] = x, 1
    b = np.asarray(points, float) * [1, -1]  # y up, like the model
    k = np.linalg.lstsq(a, b.reshape(-1), rcond=None)[0]
    s = (np.linalg.norm(k[:3]) + np.linalg.norm(k[4:7])) / 2
    return float(s), np.array([k[3], -k[7]])


def align_landmarks(landmarks: np.ndarray, pose_landmarks: np.ndarray | None = None) -> Alignment:
    """The EG3D crop (de-rolled) of a face with these 68 landmarks (pose_landmarks: kept for the pose)."""
    lm = np.asarray(landmarks, float)
    roll = ffhq_roll(lm)
    c, s_ = math.cos(roll), math.sin(roll)
    rot = np.array([[c, -s_], [s_, c]])  # upright frame -> image
    pivot = lm[36:48].mean(0)
    upright = (five_points(lm) - pivot) @ rot  # = rot^T (p - pivot)
    scale, origin = fit_standard_face(upright)
    half = CROP_UNITS * scale / 2
    corners = origin + np.array([[-half, -half], [-half, half], [half, half], [half, -half]])
    return Alignment(quad=corners @ rot.T + pivot, landmarks=lm if pose_landmarks is None else np.asarray(pose_landmarks, float))


def align_face(img: Image.Image, name: str = "the image") -> Alignment:
    """Detect the face and align it. dlib's HOG detector first, in the image as it is and turned by 90, 270
    and 180 degrees (a photo turned without an EXIF tag: HOG finds only upright faces, so a hit is the
    right way up), then the CNN detector in the image as it is (profiles; it also fires on faces lying on
    their side, where the landmark regressor fails, hence last)."""
    arr = np.asarray(img.convert("RGB"))
    for quarters in (0, 1, 3, 2):
        found = _align_array(np.ascontiguousarray(np.rot90(arr, quarters)), cnn=False)
        if found is not None:
            return Alignment(_unturn(found.quad, quarters, arr.shape), _unturn(found.landmarks, quarters, arr.shape),
                             90 * quarters)
    al = _align_array(arr, cnn=True, hog=False)  # HOG already missed this image above
    if al is None:
        raise UserError(f"no face found in {name}: it needs a visible face with eyes and mouth "
                        f"(dlib misses profiles beyond about 60 degrees)")
    return al


def _align_array(arr: np.ndarray, cnn: bool, hog: bool = True) -> Alignment | None:
    from .dlib_models import dlib_faces, face_landmarks

    lm = face_landmarks(arr, cnn, hog)
    if lm is None:
        return None
    (lx, ly), (rx, ry) = lm[36:42].mean(0), lm[42:48].mean(0)
    upright = abs(math.degrees(math.atan2(ry - ly, rx - lx))) <= 10
    # the crop from landmarks re-fitted in a box of the face's own extent: repeatable (idempotent)
    return align_landmarks(dlib_faces().refine(arr, lm) if upright else lm, lm)


def _unturn(points: np.ndarray, quarters: int, shape) -> np.ndarray:
    """Pixel coordinates in np.rot90(image, quarters) -> in the image of `shape` (h, w, ...)."""
    p = np.asarray(points, float)
    for step in range(quarters, 0, -1):  # undo one counter-clockwise quarter turn at a time
        width = shape[1] if (step - 1) % 2 == 0 else shape[0]  # of np.rot90(image, step - 1)
        p = np.stack([width - 1 - p[:, 1], p[:, 0]], axis=-1)
    return p
