"""The orbit rows of `dp3d evaluate`: seam ratio, loop closure and flicker ratio (metrics/orbit.py).

Each orbit takes a subject/frame of the dataset, its most frontal view as the reference, and a
closed back-and-forth path (`bounce`, yaw -40 -> 40 -> -40) of `orbit_views` views with condition
images of another identity. Ground truth for the flicker ratio exists on `dp3d synth` data (the
subject re-rendered at every camera); elsewhere that column is n/a. Views are cached like the pairs.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..atomic import atomic_path
from ..cameras import label_to_angles
from ..cameras.trajectories import make_trajectory
from ..conditions.sources import model_carrier_style, render_conditions
from ..data.synth_subjects import frame_number
from ..media import image_to_tensor
from ..metrics.base import MetricResult
from ..metrics.orbit import orbit_metrics
from ..metrics.report import Row
from .reference_camera import label_or_given
from .render import sample
from .render_cache import cache_key


@torch.no_grad()
def orbit_row(pipe, index, subjects, cfg, cache: Path, method: str) -> Row:
    """method: the view plan's name (settings.group_mode or the default), as the row names it."""
    s = replace(cfg.settings, group_mode=method)
    size = pipe.image_size
    traj = make_trajectory("-40:40", "0", cfg.orbit_views, "bounce")
    groups = sorted(index.groups.items())
    rng = np.random.default_rng([s.seed, 2])
    key = cache_key(s, cfg.orbit_views, s.group_mode, s.group, s.overlap, s.anchors, s.loop)
    per_orbit = []
    for k in tqdm(range(cfg.orbits), desc="rendering orbits"):
        (subject, frame), views = groups[int(rng.integers(len(groups)))]
        ref_view = index.views[min(views, key=lambda v: abs(float(label_to_angles(index.views[v].label)[0])))]
        ref = image_to_tensor(ref_view.path, size)
        folder = cache / key / f"{k:03d}"
        if not folder.is_dir():
            conds = render_conditions(traj.labels, size, 20_000 + s.seed * 1000 + k, model_carrier_style(pipe))
            out = sample(pipe, s, ref[None], conds, traj.labels, reference_label=label_or_given(s.reference_camera, ref_view.label),
                         seed=s.seed + 7919 * (k + 1))
            with atomic_path(folder, suffix="") as tmp:
                tmp.mkdir()
                for i, im in enumerate(out):
                    im.save(tmp / f"view_{i:03d}.png")
        gen = torch.stack([image_to_tensor(Image.open(folder / f"view_{i:03d}.png"), size) for i in range(len(traj))])
        truth = None
        if subjects:
            render = subjects.renderer(subject, frame_number(frame), size, ssaa=1)
            truth = torch.stack([render(float(y), float(p)) for y, p in zip(traj.yaw, traj.pitch)])
        per_orbit.append(orbit_metrics(gen, s.group, truth, closed=True))
    names = ("seam ratio", "loop closure", "flicker ratio")
    reasons = {"flicker ratio": "no ground truth at the orbit's cameras (only `dp3d synth` data has it)",
               "seam ratio": f"{cfg.orbit_views} views fit in one group of {s.group}"}
    results = {}
    for n in names:
        values = [m.get(n) for m in per_orbit]
        results[n] = MetricResult.from_values(n, values, "metrics/orbit.py", reasons.get(n) if all(v is None for v in values) else None)
    return Row(method=f"{Path(s.model).name or s.model} ({method})", split="orbit", results=results, pairs=cfg.orbits)
