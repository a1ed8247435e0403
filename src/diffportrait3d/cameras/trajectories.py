"""Camera paths for `dp3d render`: orbit, nod, spiral, or an explicit list from a JSON file.

CLI syntax: `--yaw -40:40 --pitch -10:10 --views 16 --path orbit|nod|spiral|FILE.json`, where a
range is "a:b" and a single number means a fixed angle.
- orbit:  yaw sweeps a -> b; pitch stays at the middle of its range.
- nod:    pitch sweeps a -> b; yaw stays at the middle of its range.
- spiral: yaw sweeps a -> b while pitch makes one full sine period over its range
          (middle -> top -> bottom -> middle), so a turntable also looks up and down.
- bounce: yaw sweeps a -> b -> a, the last view one step before the first: a closed path (the
          pipeline wraps its view windows around it); pitch stays at the middle of its range.
- FILE.json: the file defines the views (and `views` is ignored). Accepted forms: a list of
  [yaw, pitch] or [yaw, pitch, radius]; a list of {"yaw": .., "pitch": .., "radius": ..} dicts;
  a list of 25-float EG3D labels; or an object {"views": [...]} / EG3D's {"labels": [[name, label], ...]}.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from .eg3d import RADIUS, camera_label, check_label, label_to_angles

PATHS = ("orbit", "nod", "spiral", "bounce")


@dataclass
class Trajectory:
    labels: np.ndarray  # (N, 25) EG3D camera labels
    yaw: np.ndarray  # (N,) degrees, recovered from the labels
    pitch: np.ndarray  # (N,) degrees

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_labels(cls, labels) -> "Trajectory":
        labels = check_label(np.atleast_2d(labels))
        yaw, pitch, _ = label_to_angles(labels)
        return cls(labels, np.atleast_1d(yaw), np.atleast_1d(pitch))


def parse_range(text, name: str = "angle") -> tuple[float, float]:
    """"a:b" -> (a, b); "a" or a number -> (a, a)."""
    if isinstance(text, (int, float)):
        return float(text), float(text)
    if isinstance(text, (tuple, list)) and len(text) == 2:
        return float(text[0]), float(text[1])
    parts = str(text).split(":")
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        vals = []
    if len(vals) not in (1, 2):
        raise UserError(f"--{name} expects a number or a range a:b (e.g. -40:40), got {text!r}")
    return (vals[0], vals[-1])


def make_trajectory(yaw="-40:40", pitch="0", views: int | None = 16, path: str = "orbit",
                    radius: float = RADIUS) -> Trajectory:
    """Build the camera path the CLI describes; see the module docstring for the semantics."""
    if str(path).lower().endswith(".json") or Path(str(path)).is_file():
        return load_trajectory(path)
    if path not in PATHS:
        raise UserError(f"--path must be one of {', '.join(PATHS)} or a .json file, got {path!r}")
    if views is None or int(views) < 1:
        raise UserError(f"--views must be at least 1, got {views}")
    n = int(views)
    y0, y1 = parse_range(yaw, "yaw")
    p0, p1 = parse_range(pitch, "pitch")
    s = np.linspace(0.0, 1.0, n) if n > 1 else np.array([0.5])
    if path == "orbit":
        yaws, pitches = y0 + (y1 - y0) * s, np.full(n, (p0 + p1) / 2)
    elif path == "bounce":
        yaws, pitches = y0 + (y1 - y0) * (1 - np.abs(1 - 2 * np.arange(n) / n)), np.full(n, (p0 + p1) / 2)
    elif path == "nod":
        yaws, pitches = np.full(n, (y0 + y1) / 2), p0 + (p1 - p0) * s
    else:
        yaws = y0 + (y1 - y0) * s
        pitches = (p0 + p1) / 2 + (p1 - p0) / 2 * np.sin(2 * np.pi * s)
    for p in pitches:
        if not -90 < p < 90:
            raise UserError(f"--pitch must stay within (-90, 90) degrees, got {p:g}")
    labels = np.stack([camera_label(float(a), float(b), radius) for a, b in zip(yaws, pitches)])
    return Trajectory(labels, yaws.astype(float), pitches.astype(float))


def load_trajectory(path) -> Trajectory:
    """Read an explicit camera list from JSON (forms listed in the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"camera path file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"camera path file {path} is not valid JSON ({e})") from None
    if isinstance(data, dict):
        data = data.get("views", data.get("labels", data.get("cameras")))
    if not isinstance(data, list) or not data:
        raise UserError(f"camera path file {path} holds no views: expected a non-empty list")
    labels = [_entry_to_label(e, path, i) for i, e in enumerate(data)]
    return Trajectory.from_labels(np.stack(labels))


def _entry_to_label(entry, path, i) -> np.ndarray:
    try:
        if isinstance(entry, dict):
            return camera_label(float(entry["yaw"]), float(entry.get("pitch", 0.0)), float(entry.get("radius", RADIUS)))
        if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str):
            entry = entry[1]  # EG3D dataset.json pair [filename, label]
        if isinstance(entry, list) and len(entry) == 25:
            return check_label(entry)
        if isinstance(entry, list) and len(entry) in (2, 3):
            return camera_label(*(float(v) for v in entry))
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, UserError):
            raise UserError(f"{path}, view {i}: {e}") from None
        raise UserError(f"{path}, view {i}: cannot read {entry!r} ({e})") from None
    raise UserError(f"{path}, view {i}: expected [yaw, pitch], {{\"yaw\": ..}} or a 25-float label, got {entry!r}")
