"""Torch datasets over an EG3D-layout folder (see eg3d_index for the grouping rule).

- `PairDataset`: one item per target view: a reference view of the same subject and frame, the
  target, and a view-condition image of a DIFFERENT identity seen from the target camera.
  Stages 1-2 of training (reference module, view control).
- `ViewGroupDataset`: one item per subject/frame: V target views in random order, one shared
  reference, and a condition per target. Stage 3 (view consistency).

Condition sources: "render" draws a random identity and renders it at the target camera with the
procedural head; "folder" reads one of the images rendered ahead of time for that view, ROOT/
conditions/<view path without .png>_<k>.png (`dp3d synth --conditions K`, or a 3D GAN's renders as
the paper uses; falls back to "render" for a view that has none; synth's carrier style must be the one asked
for, `carrier_style`, which "render" draws in); "rig" takes another subject's
image at the same camera (datasets captured with aligned rigs; falls back to "render" for a camera
no other subject has); "none" omits it.

Unreadable images are skipped with a warning and counted (`bad_files`), and the item is resampled
deterministically, so an epoch never crashes halfway. Every random choice comes from
(seed, epoch, index), so an item is reproducible; call `set_epoch` to vary them per epoch.
Images are float tensors (3, res, res) in [-1, 1]; labels float tensors (25,); `*_view(s)` are the
views' positions in the index (for training/latent_cache.py).
Note that with DataLoader workers each worker process keeps its own `bad_files`.
"""

import json
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from ..cameras.eg3d import label_to_angles
from ..head import Expression, Identity, render_head
from ..errors import UserError
from ..media import image_to_tensor
from .eg3d_index import EG3DIndex

logger = logging.getLogger(__name__)
CONDITION_SOURCES = ("render", "folder", "rig", "none")
MAX_TRIES = 20


class _EG3DBase(Dataset):
    def __init__(self, root, res: int = 64, condition_source: str = "render", seed: int = 0,
                 rig_tolerance: float = 1e-3, group_fn=None, carrier_style: str = "colour"):
        if condition_source not in CONDITION_SOURCES:
            raise UserError(f"condition_source must be one of {CONDITION_SOURCES}, got {condition_source!r}")
        self.index = EG3DIndex(root, group_fn)
        self.res, self.condition_source, self.seed, self.rig_tolerance = res, condition_source, seed, rig_tolerance
        self.carrier_style = carrier_style
        if condition_source == "folder":
            check_folder_style(self.index.root, carrier_style)
        self.epoch = 0
        self.bad: set[str] = set()
        self.rig_fallbacks = 0
        self.prerendered = _prerendered(self.index.root / "conditions") if condition_source == "folder" else {}

    @property
    def bad_files(self) -> int:
        """Images skipped so far: missing at load time plus unreadable when read."""
        return len(self.index.missing) + len(self.bad)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _rng(self, i: int, attempt: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, i, attempt])

    def _image(self, v: int) -> torch.Tensor | None:
        view = self.index.views[v]
        if view.rel in self.bad:
            return None
        try:
            with Image.open(view.path) as img:
                img.load()
                return image_to_tensor(img, self.res)  # to_rgb: EXIF orientation, RGB
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
            self.bad.add(view.rel)
            logger.warning("skipping unreadable image %s (%s); %d skipped so far", view.path, e.__class__.__name__, self.bad_files)
            return None

    def _condition(self, v: int, rng: np.random.Generator) -> torch.Tensor | None:
        """A different identity at view v's camera, or None when it cannot be had (retry)."""
        if self.condition_source == "folder":
            paths = self.prerendered.get(self.index.views[v].rel[: -len(Path(self.index.views[v].rel).suffix)], [])
            if paths:
                with Image.open(paths[int(rng.integers(len(paths)))]) as img:
                    return image_to_tensor(img, self.res)
            if self.rig_fallbacks == 0:
                logger.warning("no pre-rendered condition for %s: rendering it instead", self.index.views[v].rel)
            self.rig_fallbacks += 1
        if self.condition_source == "rig":
            others = self.index.same_camera(v, self.rig_tolerance)
            for o in rng.permutation(others)[:MAX_TRIES]:
                img = self._image(int(o))
                if img is not None:
                    return img
            if self.rig_fallbacks == 0:
                logger.warning("no other subject has the camera of %s: rendering its condition instead", self.index.views[v].rel)
            self.rig_fallbacks += 1
        seed = int(rng.integers(2**31))
        r = render_head(Identity.sample(seed), self.index.views[v].label, self.res, expression=Expression.sample(seed),
                        style=self.carrier_style)
        return image_to_tensor(r.pil())

    def _label(self, v: int) -> torch.Tensor:
        return torch.tensor(self.index.views[v].label, dtype=torch.float32)


def check_folder_style(root: Path, style: str) -> None:
    """Condition images that `dp3d synth` drew in another style than the one asked for: a ControlNet trained on them
    would read carriers it never sees at sampling time (synth.json names the style; absent: colour)."""
    meta = root / "synth.json"
    try:
        made = json.loads(meta.read_text()).get("carrier_style", "colour") if meta.is_file() else None
    except (OSError, json.JSONDecodeError, AttributeError):
        made = None
    if made is not None and made != style:
        raise UserError(f"{root}'s condition images were drawn {made} (synth.json) but the carrier style is {style}; "
                        f"synthesise the data with --carrier-style {style}, or train with that style")


def _prerendered(folder: Path) -> dict[str, list[Path]]:
    """view path without extension -> its pre-rendered condition images (folder/<path>_<k>.png)."""
    out: dict[str, list[Path]] = {}
    for p in sorted(folder.rglob("*_*.png")) if folder.is_dir() else []:
        out.setdefault(p.relative_to(folder).as_posix().rsplit("_", 1)[0], []).append(p)
    return out


class PairDataset(_EG3DBase):
    """(reference, target, condition) of one subject/frame; see the module docstring."""

    def __init__(self, root, res: int = 64, condition_source: str = "render", seed: int = 0, same_view: float = 0.0, **kw):
        super().__init__(root, res, condition_source, seed, **kw)
        self.same_view = same_view  # fraction of pairs whose reference IS the target (reconstruction pairs)
        self.targets = [v for idx in self.index.groups.values() if len(idx) >= 2 for v in idx]
        if not self.targets:
            raise UserError(f"{self.index.root}: no subject/frame has two or more views, so there are no training pairs")
        self.group_of = {v: key for key, idx in self.index.groups.items() for v in idx}

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> dict:
        for attempt in range(MAX_TRIES):
            rng = self._rng(i, attempt)
            t = self.targets[i] if attempt == 0 else self.targets[int(rng.integers(len(self.targets)))]
            group = self.index.groups[self.group_of[t]]
            same = self.same_view > 0 and rng.random() < self.same_view  # no draw at 0: older runs stay bitwise
            r = t if same else int(rng.choice([v for v in group if v != t]))
            target, reference = self._image(t), self._image(r)
            if target is None or reference is None:
                continue
            item = {"reference": reference, "target": target, "reference_view": r, "target_view": t, "reference_label": self._label(r),
                    "target_label": self._label(t), "subject": self.index.views[t].subject, "frame": self.index.views[t].frame}
            if self.condition_source != "none":
                item["condition"] = self._condition(t, rng)
            return item
        raise RuntimeError(f"{MAX_TRIES} draws in a row hit unreadable images ({self.bad_files} bad so far); check the dataset")


class ViewGroupDataset(_EG3DBase):
    """V views of one subject/frame with one shared reference: in random order, or (`ordered`) V+1
    views neighbouring in yaw, in yaw order, either direction, one of them the reference: what an
    orbit's group is at sampling time."""

    def __init__(self, root, views: int = 8, res: int = 64, condition_source: str = "render", seed: int = 0,
                 ordered: bool = False, **kw):
        super().__init__(root, res, condition_source, seed, **kw)
        if views < 1:
            raise UserError(f"views must be at least 1, got {views}")
        self.views, self.ordered = views, ordered
        self.yaw = label_to_angles(self.index.labels)[0]
        self.keys = [k for k, idx in self.index.groups.items() if len(idx) >= views]
        if not self.keys:
            raise UserError(f"{self.index.root}: no subject/frame has {views} views (largest has "
                            f"{max(len(i) for i in self.index.groups.values())}); lower the group size")

    def __len__(self) -> int:
        return len(self.keys)

    def _sweep(self, group: list[int], rng) -> tuple[list[int], int]:
        """V targets neighbouring in yaw and their reference (drawn among V+1 neighbours where there are)."""
        by_yaw = sorted(group, key=lambda v: self.yaw[v])
        window = min(self.views + 1, len(by_yaw))
        start = int(rng.integers(len(by_yaw) - window + 1))
        window = by_yaw[start: start + window]
        ref = int(window[rng.integers(len(window))])
        targets = [int(v) for v in window if v != ref or len(window) == self.views][: self.views]
        return (targets[::-1] if rng.random() < 0.5 else targets), ref

    def __getitem__(self, i: int) -> dict:
        for attempt in range(MAX_TRIES):
            rng = self._rng(i, attempt)
            key = self.keys[i] if attempt == 0 else self.keys[int(rng.integers(len(self.keys)))]
            group = [v for v in self.index.groups[key] if self.index.views[v].rel not in self.bad]
            if len(group) < self.views:
                continue
            if self.ordered:
                targets, ref = self._sweep(group, rng)
            else:
                order = rng.permutation(group)  # random order: the view modules must not learn a motion
                targets = [int(v) for v in order[: self.views]]
                rest = order[self.views:]
                ref = int(rest[0]) if len(rest) else int(rng.choice(group))  # prefer a view that is not a target
            images = [self._image(v) for v in targets + [ref]]
            if any(x is None for x in images):
                continue
            item = {"reference": images[-1], "targets": torch.stack(images[:-1]),
                    "reference_view": ref, "target_views": torch.tensor(targets),
                    "reference_label": self._label(ref), "target_labels": torch.stack([self._label(v) for v in targets]),
                    "subject": key[0], "frame": key[1]}
            if self.condition_source != "none":
                item["conditions"] = torch.stack([self._condition(v, rng) for v in targets])
            return item
        raise RuntimeError(f"{MAX_TRIES} draws in a row hit unreadable images ({self.bad_files} bad so far); check the dataset")
