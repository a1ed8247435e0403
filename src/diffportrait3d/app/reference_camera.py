"""`--reference-camera`: the EG3D camera each reference image was taken from, as a user has it.

The camera reaches the model three ways (the 3D-aware noise, the reference position bias, the colour pull);
a reference taken as frontal when it is not loses all three (issue 37: 0.80 SSIM instead of 0.90 at yaw 42°).
- auto (default), per reference: the estimate when --crop aligned the photo; else the label a `dataset.json`
  gives it (the image's folder or up to two folders above, as `dp3d synth`, `dp3d align`, `dp3d render` and
  EG3D datasets write it, listing the image by its path from there); else frontal, said in the crop's line.
- "YAW,PITCH" (or "YAW", pitch 0), degrees as --yaw and --pitch take them: that camera for every reference.
"""

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..cameras import camera_label, check_label, label_to_angles
from ..errors import UserError

AUTO = "auto"
DATASET_LEVELS = 3  # the image's folder and two above it: subject/frame/cam.png under a `dp3d synth` root
HELP = ("auto (default): for each reference, the camera estimated when it is aligned, else its label in a "
        "dataset.json beside it (dp3d synth, dp3d align), else frontal; or YAW,PITCH in degrees (as --yaw/--pitch) "
        "for every reference")


def parse_reference_camera(text: str) -> tuple[float, float] | None:
    """None for auto, else (yaw, pitch) in degrees; a UserError says what was wrong and how to write it."""
    text = str(text).strip()
    if text.lower() == AUTO:
        return None
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not all(math.isfinite(v) for v in values):
        raise UserError(f"--reference-camera {text!r}: give auto or YAW,PITCH in degrees, e.g. 40,0 or -30,10")
    yaw, pitch = values[0], values[1] if len(values) == 2 else 0.0
    if not -180 <= yaw <= 180 or not -89 <= pitch <= 89:
        raise UserError(f"--reference-camera {text}: yaw must be within -180..180 and pitch within -89..89 degrees")
    return yaw, pitch


def dataset_label(image) -> tuple[np.ndarray, Path] | None:
    """(label, dataset.json) for an image file that a dataset.json in its folder or above lists, else None.
    An unreadable or malformed dataset.json is passed over (the next one up, or frontal, is used)."""
    if not isinstance(image, (str, Path)):
        return None
    path = Path(image).absolute()
    for folder in path.parents[:DATASET_LEVELS]:
        meta = folder / "dataset.json"
        if not meta.is_file():
            continue
        rel = path.relative_to(folder).as_posix()
        try:
            entries = json.loads(meta.read_text()).get("labels") or []
            for name, label in entries:
                if Path(name).as_posix().removeprefix("./") == rel and label is not None:
                    return check_label(label), meta
        except (OSError, ValueError, TypeError, AttributeError, UnicodeDecodeError):
            continue
    return None


def place_references(aligned: list, sources: list, spec: str = AUTO) -> list:
    """faces.crop.AlignedPortrait per reference with `.label` the camera `spec` gives it (never None) and the
    camera said in `.note`; `sources`: the paths (or PIL images) the references came from, for dataset.json."""
    given = parse_reference_camera(spec)
    placed = []
    for a, source in zip(aligned, sources):
        if given is not None:
            label, said = camera_label(*given), f"camera yaw {given[0]:+g}°, pitch {given[1]:+g}° (--reference-camera)"
        elif a.label is not None:
            label, said = a.label, ""  # the crop's line already gives the estimate
        elif (found := dataset_label(source)) is not None:
            label, meta = found
            yaw, pitch = label_to_angles(label)[:2]
            said = f"camera yaw {yaw:+.0f}°, pitch {pitch:+.0f}° from {meta}"
        else:
            label, said = camera_label(0.0, 0.0), "camera taken as frontal (--reference-camera YAW,PITCH gives it)"
        placed.append(replace(a, label=np.asarray(label, dtype=np.float64), note=f"{a.note}; {said}" if said else a.note))
    return placed


def label_or_given(spec: str, known) -> np.ndarray:
    """A reference's camera where it is known (`known`, e.g. its dataset label): `known` for auto, else the given one."""
    given = parse_reference_camera(spec)
    return known if given is None else camera_label(*given)
