"""`--conditions VIDEO`: for each requested camera, the video frame whose head pose is nearest.

Anyone filming a head turn gets real condition images: every frame (at most MAX_FRAMES, evenly
spaced) is aligned like EG3D's crops and its camera estimated (faces.crop.align_portrait); each
requested camera then takes the aligned frame whose estimated (yaw, pitch) is nearest. The labels
returned are the estimated cameras of the picked frames, since those are what the images show.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..cameras import label_to_angles
from ..errors import UserError

logger = logging.getLogger(__name__)
MAX_FRAMES = 120  # pose estimation costs about 0.3 s a frame on one CPU core
# the estimator's pitch errs about twice as much as its yaw (benchmarks/bench_head_pose.py), so a
# degree of pitch counts half in the distance between requested and estimated cameras
ANGLE_WEIGHTS = np.array([1.0, 0.5])


@dataclass
class PickedFrames:
    images: list[Image.Image]  # aligned crops, one per requested camera
    labels: np.ndarray  # (N, 25) estimated cameras of the picked frames
    frame_index: list[int]  # index into the frames given
    angle_error: np.ndarray  # (N,) weighted degrees between requested and picked (yaw, pitch), see ANGLE_WEIGHTS


def pick_frames(frames: list[Image.Image], labels, size: int, name: str = "the video") -> PickedFrames:
    """Pick, for each camera label (N, 25), the frame whose estimated camera is nearest."""
    from ..faces.crop import align_portrait

    if len(frames) > MAX_FRAMES:
        keep = np.linspace(0, len(frames) - 1, MAX_FRAMES).round().astype(int)
        frames, index = [frames[i] for i in keep], keep.tolist()
    else:
        index = list(range(len(frames)))
    found = []  # (frame index, aligned image, label)
    for i, frame in zip(index, tqdm(frames, desc="estimating head poses", leave=False)):
        try:
            a = align_portrait(frame, size, f"frame {i} of {name}")
        except UserError as e:
            if "needs dlib" in str(e):
                raise
            continue  # no face in this frame
        found.append((i, a.image, a.label))
    if not found:
        raise UserError(f"no face found in any frame of {name}; pass a folder of condition images instead")
    have = np.stack([label_to_angles(f[2])[:2] for f in found])  # (F, 2) yaw, pitch
    want = np.stack(label_to_angles(np.atleast_2d(labels))[:2], axis=-1)  # (N, 2)
    dist = np.linalg.norm((want[:, None] - have[None]) * ANGLE_WEIGHTS, axis=-1)  # (N, F)
    best = dist.argmin(1)
    picked = PickedFrames([found[j][1] for j in best], np.stack([found[j][2] for j in best]),
                          [found[j][0] for j in best], dist[np.arange(len(best)), best])
    logger.info("picked frames %s of %s; (yaw, pitch) off by %.1f deg on average, %.1f at worst",
                picked.frame_index, name, picked.angle_error.mean(), picked.angle_error.max())
    return picked
