"""What the model gets from a photo: `--crop auto` (default), `align` or `none`.

auto: an image that is already an EG3D-framed square (EG3D/FFHQ crops, the authors' samples, our synthetic
heads) passes through bit-identical, so the release-exact path and the miniature model's results do not
change; any other photo is aligned like EG3D's FFHQ crops and its EG3D camera estimated. Images under
MIN_ALIGN_SIZE and photos without a findable face are used as they are (a non-square one centre-cropped).
align: always align (fails when no face is found). none: never align.
A non-square image that is not aligned is centre-cropped to its largest square: a head is never stretched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..cameras import FOCAL, label_to_angles
from ..errors import UserError

CROP_MODES = ("auto", "align", "none")
# dlib's landmarks on our 64-px heads put the EG3D box 7-33% of the side off (0.01 at 512 px): too noisy to act on
MIN_ALIGN_SIZE = 128
# an image whose EG3D box is this close to its own frame is already aligned: our heads rendered at EG3D's
# cameras measure 0.85-1.26 of the side, centres within 0.1; a re-aligned astronaut 0.01 (tests/test_align.py)
ALIGNED_SCALE, ALIGNED_CENTRE, ALIGNED_ROLL = 0.2, 0.1, 8.0


@dataclass
class AlignedPortrait:
    image: Image.Image
    label: np.ndarray | None  # (25,) estimated EG3D camera, None when not aligned (the noise model assumes frontal)
    alignment: object | None = None  # faces.align.Alignment
    note: str = ""  # one line: what was done to the image


def align_portrait(img: Image.Image, size: int = 512, name: str = "the image", alignment=None) -> AlignedPortrait:
    """The EG3D crop of the most confident face (or of `alignment`) and its estimated camera."""
    from .align import align_face
    from .pose import camera_from_pose, head_pose

    al = alignment or align_face(img, name)
    pose = head_pose(al.to_crop(al.landmarks, size), size, size, FOCAL * size)
    label = camera_from_pose(*pose)
    yaw, pitch = label_to_angles(label)[:2]
    turned = f" turned {al.turned} degrees (the file has no EXIF orientation)" if al.turned else ""
    note = f"{name}: aligned: face found{turned}, yaw {yaw:+.0f}°, pitch {pitch:+.0f}°"
    return AlignedPortrait(al.crop(img, size), label, al, note)


def centre_square(img: Image.Image) -> Image.Image:
    """The largest centred square of `img` (the image itself when it is square)."""
    w, h = img.size
    if w == h:
        return img
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return img.crop((left, top, left + s, top + s))


def already_aligned(alignment, size: tuple[int, int]) -> bool:
    """The image is a square whose EG3D box is (nearly) its own frame."""
    w, h = size
    centre = alignment.quad.mean(0) / w - 0.5
    return (w == h and abs(alignment.side / w - 1) <= ALIGNED_SCALE and np.abs(centre).max() <= ALIGNED_CENTRE
            and abs(alignment.roll) <= ALIGNED_ROLL)


def as_is(img: Image.Image, name: str, why: str) -> AlignedPortrait:
    w, h = img.size
    done = "used as is" if w == h else f"centre-cropped to {min(w, h)}x{min(w, h)}"
    return AlignedPortrait(centre_square(img), None, note=f"{name}: {done} ({why})")


def crop_face(img: Image.Image, mode: str = "auto", name: str = "the image", size: int = 512) -> AlignedPortrait:
    """The image as the model gets it (see the module docstring); `align` raises a UserError without a face."""
    from .align import align_face

    if mode not in CROP_MODES:
        raise UserError(f"--crop must be one of {', '.join(CROP_MODES)}, got {mode!r}")
    if mode == "none":
        return as_is(img, name, "--crop none")
    if mode == "auto" and min(img.size) < MIN_ALIGN_SIZE:
        return as_is(img, name, f"under {MIN_ALIGN_SIZE} px, too small to align; --crop align forces it")
    try:
        al = align_face(img, name)
    except UserError as e:
        if not str(e).startswith("no face found"):
            raise
        if mode == "align":
            raise UserError(f"{e}; pass --crop none to use it as it is") from None
        return as_is(img, name, "no face found; --crop align requires one")
    if mode == "auto" and already_aligned(al, img.size):
        return AlignedPortrait(img, None, al, f"{name}: used as is (already aligned; --crop align re-aligns it "
                                              "and estimates its camera)")
    return align_portrait(img, size, name, al)
