"""Read an EG3D-layout folder: `dataset.json` labels, grouped by subject and frame.

Works for our `dp3d synth` output and for anybody's EG3D/PanoHead-style data.
Grouping rule, from the image's path relative to the folder (documented so datasets can be
arranged to fit it):
- "a/b/subject/frame/cam.png" (three or more parts): subject = everything before the last two
  parts ("a/b/subject"), frame = the second-to-last part;
- "subject/img.png" (two parts): subject = the folder, frame = "0";
- "img.png" (one part): every image is its own subject, frame "0".
Beware: EG3D's FFHQ release buckets UNRELATED people into folders of 1000 ("00000/img00000000.png");
the rule above would call each bucket one subject. Pass `group_fn` to override the rule.
"""

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..cameras import check_label
from ..errors import UserError

logger = logging.getLogger(__name__)


@dataclass
class View:
    path: Path  # absolute image path
    rel: str  # path as written in dataset.json
    label: np.ndarray  # (25,) camera label
    subject: str
    frame: str


def default_group(rel: str) -> tuple[str, str]:
    """(subject, frame) of a relative image path, by the rule in the module docstring."""
    parts = Path(rel).parts
    if len(parts) >= 3:
        return "/".join(parts[:-2]), parts[-2]
    if len(parts) == 2:
        return parts[0], "0"
    return Path(rel).stem, "0"


DATASET_JSON = "dataset.json"


def dataset_json(names, labels) -> str:
    """The text of an EG3D `dataset.json` listing `names` (paths relative to its folder) with their
    (N, 25) camera labels; floats are written with repr precision, so they read back exactly."""
    labels = check_label(np.atleast_2d(labels))
    if len(names) != len(labels):
        raise ValueError(f"{len(names)} names but {len(labels)} labels")
    return json.dumps({"labels": [[str(n), [float(x) for x in lab]] for n, lab in zip(names, labels)]})


def is_render_dataset_json(path: Path) -> bool:
    """Whether `path` is a dataset.json that `dp3d render` wrote (it lists only view_NNN.png files)."""
    import re

    try:
        entries = json.loads(Path(path).read_text()).get("labels")
        return bool(entries) and all(re.fullmatch(r"view_\d{3,}\.png", e[0]) for e in entries)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError, IndexError, KeyError):
        return False


class EG3DIndex:
    """All views of a dataset folder; `groups` maps (subject, frame) to view indices.

    Views whose files are missing are dropped at load time with a warning (`missing` counts them).
    """

    def __init__(self, root: str | Path, group_fn: Callable[[str], tuple[str, str]] | None = None):
        self.root = Path(root)
        meta = self.root / DATASET_JSON
        if not meta.is_file():
            raise UserError(f"no dataset.json in {self.root} (expected EG3D layout: images + dataset.json with labels)")
        try:
            entries = json.loads(meta.read_text()).get("labels")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
            raise UserError(f"{meta} is not an EG3D dataset.json ({e.__class__.__name__})") from None
        if not entries:
            raise UserError(f"{meta} has no labels (expected {{\"labels\": [[\"path.png\", [25 floats]], ...]}})")
        group_fn = group_fn or default_group
        self.views: list[View] = []
        self.missing: list[str] = []
        for rel, label in entries:
            if label is None:  # EG3D allows unlabeled images; they cannot be used here
                continue
            path = self.root / rel
            if not path.is_file():
                self.missing.append(rel)
                continue
            subject, frame = group_fn(rel)
            self.views.append(View(path, rel, check_label(label), subject, frame))
        if self.missing:
            logger.warning("%s: %d of %d listed images are missing and were skipped (first: %s)",
                           meta, len(self.missing), len(entries), self.missing[0])
        if not self.views:
            raise UserError(f"{meta}: none of the {len(entries)} listed images exist")
        groups = defaultdict(list)
        for i, v in enumerate(self.views):
            groups[(v.subject, v.frame)].append(i)
        self.groups: dict[tuple[str, str], list[int]] = dict(groups)
        self.labels = np.stack([v.label for v in self.views])  # (N, 25)
        self.subjects = np.array([v.subject for v in self.views])

    def __len__(self) -> int:
        return len(self.views)

    def same_camera(self, i: int, tol: float = 1e-3) -> np.ndarray:
        """Indices of views of OTHER subjects whose label matches view i's within tol (max abs diff)."""
        close = np.abs(self.labels - self.labels[i]).max(1) <= tol
        return np.nonzero(close & (self.subjects != self.views[i].subject))[0]
