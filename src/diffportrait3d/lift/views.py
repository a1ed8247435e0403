"""A posed multi-view set from a folder: images + an EG3D dataset.json (what `dp3d render` writes).

Every listed image is a view of the same head. The checks give one-line UserErrors: no
dataset.json, fewer than two views, images of different or non-square sizes, a dataset of several
subjects (lift one subject's folder at a time).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..data.eg3d_index import EG3DIndex
from ..errors import UserError


@dataclass
class Views:
    images: torch.Tensor  # (V, 3, H, W) in [0, 1]
    labels: np.ndarray  # (V, 25) EG3D cameras
    names: list[str]  # as dataset.json lists them

    @property
    def size(self) -> int:
        return self.images.shape[-1]


def load_views(folder) -> Views:
    from ..media import to_rgb

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder; pass a folder of views with their dataset.json (e.g. a `dp3d render` output)")
    index = EG3DIndex(folder)
    if len(index.groups) > 1 and any(len(Path(v.rel).parts) > 1 for v in index.views):
        raise UserError(f"{folder}: dataset.json lists {len(index.groups)} subjects/frames; lift one subject's views at a time")
    if len(index) < 2:
        raise UserError(f"{folder}: {len(index)} view with a camera; a 3D fit needs two or more views of the head")
    images, sizes = [], {}
    for v in index.views:
        try:
            with Image.open(v.path) as img:
                rgb = to_rgb(img)
        except (OSError, UnidentifiedImageError) as e:
            raise UserError(f"{v.path}: not a readable image ({e.__class__.__name__})") from None
        sizes.setdefault(rgb.size, v.rel)
        images.append(torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255).permute(2, 0, 1))
    if len(sizes) > 1:
        (s1, a), (s2, b) = list(sizes.items())[:2]
        raise UserError(f"{folder}: views of different sizes ({a} is {s1[0]}x{s1[1]}, {b} is {s2[0]}x{s2[1]}); "
                        "the cameras' intrinsics are per image size, so the views must share one")
    (w, h), = sizes
    if w != h:
        raise UserError(f"{folder}: views are {w}x{h}; EG3D cameras here describe square images")
    return Views(torch.stack(images), index.labels, [v.rel for v in index.views])
