"""Where `dp3d evaluate` caches rendered views: one folder per combination of view-changing settings,
so an interrupted evaluation resumes and a changed setting renders afresh (evaluate.py, evaluate_orbits.py)."""

import hashlib
import json
from pathlib import Path

from .settings import RenderSettings


def cache_key(s: RenderSettings, *extra) -> str:
    """The rendered views' cache folder name: every setting that changes a view, and `extra`."""
    values = [str(Path(s.model).resolve()), s.dtype, s.mode, s.steps, s.guidance, s.eta, s.seed, s.proxy, *extra]
    values += [s.noise_mean] if s.noise_mean != "keep" else []  # older "keep" caches keep their names
    values += [s.reference_camera] if s.reference_camera != "auto" else []  # auto: the dataset's labels, as before
    return hashlib.sha1(json.dumps(values).encode()).hexdigest()[:12]
