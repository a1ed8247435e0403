"""`--crop auto`: align a portrait like EG3D's FFHQ crops and estimate the EG3D camera that sees it.

`--crop none` passes a square image through unchanged (camera unknown: the noise model assumes a
frontal reference) and centre-crops any other to its largest square, so a head is never stretched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..cameras import FOCAL
from ..errors import UserError

CROP_MODES = ("auto", "none")


@dataclass
class AlignedPortrait:
    image: Image.Image
    label: np.ndarray | None  # (25,) estimated EG3D camera, None when not aligned
    alignment: object | None = None  # faces.align.Alignment


def align_portrait(img: Image.Image, size: int = 512, name: str = "the image") -> AlignedPortrait:
    """The EG3D crop of the most confident face and its estimated camera."""
    from .align import align_face
    from .pose import camera_from_pose, head_pose

    al = align_face(img, name)
    crop = al.crop(img, size)
    pose = head_pose(al.to_crop(al.landmarks, size), size, size, FOCAL * size)
    return AlignedPortrait(crop, camera_from_pose(*pose), al)


def centre_square(img: Image.Image) -> Image.Image:
    """The largest centred square of `img` (the image itself when it is square)."""
    w, h = img.size
    if w == h:
        return img
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return img.crop((left, top, left + s, top + s))


def crop_face(img: Image.Image, mode: str = "auto", name: str = "the image", size: int = 512) -> AlignedPortrait:
    """Align (auto) or pass through (none); raises a UserError when no face is found."""
    if mode == "none":
        return AlignedPortrait(centre_square(img), None)
    if mode != "auto":
        raise UserError(f"--crop must be one of {', '.join(CROP_MODES)}, got {mode!r}")
    try:
        return align_portrait(img, size, name)
    except UserError as e:
        if not str(e).startswith("no face found"):
            raise
        raise UserError(f"{e}; pass --crop none to use it as it is") from None
