"""`--crop auto`: find the face offline and frame it like the model's training data.

The detector is OpenCV's Haar frontal-face cascade, whose model file ships inside the
opencv-python-headless wheel (no download). The crop is a square centred on the detected box,
FACE_BOX_SCALE times its width, which reproduces the framing of our renderer at the default
EG3D camera (front view, radius 2.7): there the Haar box is 0.57 of the image wide and centred
within 1% (measured on the contact-sheet identities; see tests/test_conditions.py). Parts of the
crop outside the photo are filled by repeating the border pixels.
`--crop none` passes the image through unchanged.
"""

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UserError

FACE_BOX_FRACTION = 0.74  # Haar box width / image width in our renders at the default camera
FACE_BOX_SCALE = 1 / FACE_BOX_FRACTION  # crop side = this x box width
FACE_BOX_CENTRE = (0.5, 0.5)  # where the box centre lands in the crop (x, y), fractions of the side
CROP_MODES = ("auto", "none")


def _cv2():
    try:
        import cv2
    except ImportError:
        raise UserError("--crop auto needs OpenCV: pip install 'diffportrait3d[metrics]' (opencv-python-headless<5)") from None
    return cv2


def detect_face(img: Image.Image) -> tuple[int, int, int, int] | None:
    """The largest frontal face as (x, y, w, h) in pixels, or None."""
    cv2 = _cv2()
    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"))
    if cascade.empty():
        raise UserError("OpenCV's Haar face cascade could not be loaded; reinstall opencv-python-headless")
    gray = cv2.cvtColor(np.asarray(img.convert("RGB")), cv2.COLOR_RGB2GRAY)
    side = min(gray.shape)
    faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(max(16, side // 12),) * 2)
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    return int(x), int(y), int(w), int(h)


def crop_box(face: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The square (left, top, right, bottom) that frames a detected face box like our training data."""
    x, y, w, h = face
    side = int(round(w * FACE_BOX_SCALE))
    cx, cy = x + w / 2, y + h / 2
    left = int(round(cx - FACE_BOX_CENTRE[0] * side))
    top = int(round(cy - FACE_BOX_CENTRE[1] * side))
    return left, top, left + side, top + side


def crop_face(img: Image.Image, mode: str = "auto", name: str = "the image") -> Image.Image:
    """Crop (auto) or pass through (none); raises a UserError when no face is found."""
    if mode == "none":
        return img
    if mode != "auto":
        raise UserError(f"--crop must be one of {', '.join(CROP_MODES)}, got {mode!r}")
    face = detect_face(img)
    if face is None:
        raise UserError(f"no face found in {name}; pass --crop none to use the image as it is")
    return _crop_padded(img.convert("RGB"), crop_box(face))


def _crop_padded(img: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """Crop a box that may reach outside the image, repeating the edge pixels there."""
    left, top, right, bottom = box
    arr = np.asarray(img)
    h, w = arr.shape[:2]
    pad = max(0, -left, -top, right - w, bottom - h)
    if pad:
        arr = np.pad(arr, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    return Image.fromarray(arr[top + pad:bottom + pad, left + pad:right + pad])
