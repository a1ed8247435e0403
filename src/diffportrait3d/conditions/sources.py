"""View-condition images for `dp3d render`, from one of three sources behind one interface.

- None or "render": the built-in head renderer draws a proxy identity (picked by
  `condition_seed`: the model's, see model_condition_seed) at every camera of the requested path (yaw/pitch/views/path, as in
  trajectories); the camera labels come back too.
- a folder of images: all of them, in sorted file-name order (labels too if the folder holds
  an EG3D dataset.json listing them, else None).
- a video file: for each camera of the requested path, the frame whose estimated head pose is
  nearest, aligned like EG3D's crops (conditions.video); labels = the picked frames' cameras.
- one image file: that image alone.
Every image is returned as an RGB PIL image resized to size x size (no crop), like the model's input.
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UserError
from ..media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, list_images, open_rgb, read_video_frames
from ..cameras import check_label
from ..head import Expression, Identity, build_scene, render_scene
from ..head.shading import STYLES
from ..cameras.trajectories import make_trajectory

# The identity whose renders carry the cameras when neither the user (--condition-seed) nor the model folder
# ("condition_seed" in model_index.json) names one. Which carrier a ControlNet reads best is a fact about that
# model (benchmarks/bench_carriers.py: the miniature model misreads grey short hair by 30° and more, so its folder
# names seed 7), so the renderer's own default is its first identity, as before any model was tuned.
RENDERER_CONDITION_SEED = 0


def model_condition_seed(pipe) -> int:
    """The carrier identity a loaded pipeline's model folder names, else the renderer's default."""
    seed = pipe.config.get("condition_seed")
    return RENDERER_CONDITION_SEED if seed is None else int(seed)


def model_carrier_style(pipe) -> str:
    """How a loaded pipeline's model wants its carriers drawn ("carrier_style" in model_index.json: the style its
    ControlNet was trained on, head/shading.STYLES), else "colour"."""
    return pipe.config.get("carrier_style") or "colour"


def load_conditions(spec, views: int | None, size: int, *, yaw=None, pitch=None, path: str = "orbit",
                    condition_seed: int | None = None, carrier_style: str = "colour") -> tuple[list[Image.Image], np.ndarray | None]:
    """Condition images (and their camera labels when known) for the requested views; condition_seed None: the
    renderer's default identity, drawn in carrier_style."""
    if spec is None or str(spec) == "render":
        traj = _path(yaw, pitch, views, path)
        return render_conditions(traj.labels, size, condition_seed, carrier_style), traj.labels
    p = Path(spec)
    if not p.exists():
        raise UserError(f"condition source not found: {p} (pass a folder of images, a video, or 'render')")
    if p.is_dir():
        files = list_images(p)  # raises a UserError when there are none
        return [_fit(open_rgb(f), size) for f in files], _folder_labels(p, files)
    suffix = p.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        from .video import pick_frames

        frames = read_video_frames(p)  # raises a UserError when unreadable
        if not frames:
            raise UserError(f"no frames could be read from video {p}")
        picked = pick_frames(frames, _path(yaw, pitch, views, path).labels, size, str(p))
        return picked.images, picked.labels
    if suffix in IMAGE_SUFFIXES:
        return [_fit(open_rgb(p), size)], None
    raise UserError(f"condition source {p} is neither a folder, an image ({', '.join(sorted(IMAGE_SUFFIXES))}) "
                    f"nor a video ({', '.join(sorted(VIDEO_SUFFIXES))})")


def posed_view_count(spec, views: int | None, default_views: int) -> tuple[int, bool]:
    """(views, cameras known) that load_conditions(spec, views, ...) will return, without drawing or
    decoding anything: for checks before a model loads (e.g. `render --lift` needs two posed views)."""
    if spec is None or str(spec) == "render":
        return views or default_views, True
    p = Path(spec)
    if p.is_dir():
        files = list_images(p)
        return len(files), _folder_labels(p, files) is not None
    if p.suffix.lower() in VIDEO_SUFFIXES:  # pick_frames estimates each picked frame's camera
        return views or default_views, True
    return 1, False


def render_conditions(labels, size: int, condition_seed: int | None = None, style: str = "colour") -> list[Image.Image]:
    """The proxy identity of `condition_seed` (None: RENDERER_CONDITION_SEED), neutral expression, rendered at each
    label in `style` (head/shading.STYLES)."""
    if size < 8:
        raise UserError(f"condition size must be at least 8 pixels, got {size}")
    identity = Identity.sample(RENDERER_CONDITION_SEED if condition_seed is None else condition_seed)
    return render_carrier(identity, labels, size, style)


def render_carrier(identity: Identity, labels, size: int, style: str = "colour") -> list[Image.Image]:
    """`identity`, neutral expression, rendered at each label (any carrier: e.g. a seed's with its hair recoloured)."""
    if style not in STYLES:
        raise UserError(f"carrier style must be one of {', '.join(STYLES)}, got {style!r}")
    scene = build_scene(identity, Expression())
    return [render_scene(scene, check_label(label), size, style=style).pil() for label in np.atleast_2d(labels)]


def _path(yaw, pitch, views, path):
    return make_trajectory("-40:40" if yaw is None else yaw, "0" if pitch is None else pitch, views, path)


def _fit(img: Image.Image, size: int) -> Image.Image:
    return img if img.size == (size, size) else img.resize((size, size), Image.BICUBIC)


def _folder_labels(folder: Path, files: list[Path]) -> np.ndarray | None:
    """Labels of the folder's images from its dataset.json, when it lists every one of them."""
    meta = folder / "dataset.json"
    if not meta.is_file():
        return None
    try:
        table = {Path(rel).name: lab for rel, lab in json.loads(meta.read_text()).get("labels", [])}
        return np.stack([check_label(table[f.name]) for f in files])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
