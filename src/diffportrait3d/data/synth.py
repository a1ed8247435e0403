"""`dp3d synth`: a multi-view portrait dataset from the procedural head, in EG3D's layout.

OUT/
  dataset.json    {"labels": [["subject0000/frame00/cam00.png", [25 floats]], ...]}
  subjects.json   per subject: identity seed and parameters; per frame: expression and light
  synth.json      the settings, so a re-run can check it is resuming the same dataset
  subject0000/frame00/cam00.png ...
  conditions/subject0000/frame00/cam00_0.png ...   (with --conditions K: K view-condition images per
                  view, a different random identity and expression at the same camera, so training
                  reads them instead of rendering them at every step; the "folder" condition source;
                  --carrier-style clay draws them as shape only, see head/shading.py)

Resumable: each subject's images are written atomically, then its labels.json, which marks it
complete; re-running skips complete subjects. dataset.json and subjects.json are written
(atomically) at the end, listing every subject. Other files in OUT are left alone.
"""

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..atomic import atomic_folder, atomic_path, remove_partials
from ..cameras import RADIUS, camera_label
from ..head import Expression, Identity, build_scene, render_scene
from ..head.shading import STYLES
from ..errors import UserError
from ..preflight import check_output_folder, check_range

logger = logging.getLogger(__name__)


@dataclass
class SynthConfig:
    subjects: int = 100
    frames: int = 1  # expressions per subject; frame 0 is neutral
    views: int = 8  # cameras per frame
    res: int = 64
    seed: int = 0
    rig: bool = False  # every subject and frame shares the same cameras (an aligned capture rig)
    yaw_range: float = 60.0  # most cameras within +-yaw_range ...
    yaw_wide: float = 0.15  # ... and this share out to +-90 (profiles)
    pitch_std: float = 8.0  # pitch ~ N(0, pitch_std) clipped to +-20
    conditions: int = 0  # cross-identity condition renders per view, under conditions/ (0: none)
    carrier_style: str = "colour"  # how the condition renders are drawn: colour | clay (head/shading.py)
    sweep: float = 0.0  # > 0: each frame's cameras are a yaw sweep, steps uniform in [sweep/3, sweep] degrees
    workers: int = 1


def sample_cameras(rng: np.random.Generator, n: int, cfg: SynthConfig) -> np.ndarray:
    """(n, 2) yaw, pitch in degrees from a portrait-like distribution."""
    wide = rng.random(n) < cfg.yaw_wide
    yaw = np.where(wide, rng.choice([-1, 1], n) * rng.uniform(cfg.yaw_range, 90, n), rng.uniform(-cfg.yaw_range, cfg.yaw_range, n))
    pitch = np.clip(rng.normal(0, cfg.pitch_std, n), -20, 20)
    return np.stack([yaw, pitch], 1)


def sweep_cameras(rng: np.random.Generator, n: int, cfg: SynthConfig) -> np.ndarray:
    """(n, 2) yaw, pitch along a yaw sweep in ascending yaw, anywhere within +-90: neighbouring views as
    close as an orbit's (what the view modules attend across at sampling time), pitch drifting slowly."""
    step = rng.uniform(cfg.sweep / 3, cfg.sweep)
    span = min(step * (n - 1), 180.0)
    yaw = rng.uniform(-90, 90 - span) + np.linspace(0, span, n)
    pitch = np.clip(rng.normal(0, cfg.pitch_std) + rng.normal(0, 2) * np.linspace(-1, 1, n), -20, 20)
    return np.stack([yaw, pitch], 1)


def subject_plan(cfg: SynthConfig, i: int) -> dict:
    """Everything needed to render subject i, derived from (seed, i) only."""
    rng = np.random.default_rng([cfg.seed, i, 0x5E])
    identity_seed = int(rng.integers(2**31))
    cameras = sweep_cameras if cfg.sweep > 0 else sample_cameras
    rig = cameras(np.random.default_rng([cfg.seed, 0x816]), cfg.views, cfg) if cfg.rig else None  # a rig can sweep too
    frames = []
    for f in range(cfg.frames):
        expr = Expression() if f == 0 else Expression.sample(int(rng.integers(2**31)), neutral_prob=0.1)
        idt = Identity.sample(identity_seed)
        light = (idt.light_azimuth + rng.uniform(-0.3, 0.3), float(np.clip(idt.light_elevation + rng.uniform(-0.2, 0.2), 0.0, 1.2)))
        cams = rig if rig is not None else cameras(rng, cfg.views, cfg)
        frames.append({"expression": expr.to_dict(), "light": [float(light[0]), float(light[1])],
                       "cameras": [[float(y), float(p)] for y, p in cams]})
    return {"name": f"subject{i:04d}", "identity_seed": identity_seed, "frames": frames}


def render_conditions(cfg: SynthConfig, out: Path, plan: dict, i: int) -> None:
    """out/conditions/subjectXXXX: cfg.conditions other identities at each of the subject's cameras."""
    with atomic_folder(out / "conditions" / plan["name"]) as tmp:
        for f, frame in enumerate(plan["frames"]):
            (tmp / f"frame{f:02d}").mkdir(parents=True)
            for c, (yaw, pitch) in enumerate(frame["cameras"]):
                label = camera_label(yaw, pitch, RADIUS)
                for k in range(cfg.conditions):
                    seed = int(np.random.default_rng([cfg.seed, i, f, c, k, 0xC0]).integers(2**31))
                    scene = build_scene(Identity.sample(seed), Expression.sample(seed))
                    render_scene(scene, label, cfg.res, style=cfg.carrier_style).pil().save(tmp / f"frame{f:02d}" / f"cam{c:02d}_{k}.png")


def render_subject(cfg: SynthConfig, out: Path, i: int) -> dict:
    """Render one subject into out/subjectXXXX, labels.json last (its conditions first, when asked
    for); returns its plan with labels."""
    plan = subject_plan(cfg, i)
    identity = Identity.sample(plan["identity_seed"])
    plan["identity"] = identity.to_dict()
    if cfg.conditions:
        render_conditions(cfg, out, plan, i)
    labels = []
    with atomic_folder(out / plan["name"]) as tmp:
        for f, frame in enumerate(plan["frames"]):
            scene = build_scene(identity, Expression(**frame["expression"]))
            (tmp / f"frame{f:02d}").mkdir(parents=True)
            for c, (yaw, pitch) in enumerate(frame["cameras"]):
                label = camera_label(yaw, pitch, RADIUS)
                rel = f"{plan['name']}/frame{f:02d}/cam{c:02d}.png"
                img = render_scene(scene, label, cfg.res, light=tuple(frame["light"])).pil()
                img.save(tmp / f"frame{f:02d}" / f"cam{c:02d}.png")
                labels.append([rel, [float(v) for v in label]])
    with atomic_path(out / plan["name"] / "labels.json") as tmp:
        tmp.write_text(json.dumps(labels))
    return plan


def _worker(args):
    torch.set_num_threads(1)
    return render_subject(*args)


def synth(out: str | os.PathLike, cfg: SynthConfig, progress: bool = True) -> Path:
    """Write (or finish writing) a synthetic dataset; returns the path of its dataset.json."""
    for arg, value, lo, hi in (("--subjects", cfg.subjects, 1, None), ("--frames", cfg.frames, 1, None),
                               ("--views", cfg.views, 1, None), ("--res", cfg.res, 16, 1024), ("--seed", cfg.seed, 0, None),
                               ("--workers", cfg.workers, 1, 256), ("--conditions", cfg.conditions, 0, None)):
        check_range(arg, value, lo, hi, integer=True)
    check_range("--sweep", cfg.sweep, 0, 90)
    if cfg.carrier_style not in STYLES:
        raise UserError(f"--carrier-style must be one of {', '.join(STYLES)}, got {cfg.carrier_style!r}")
    if cfg.sweep > 0 and cfg.views > 1 and (cfg.views - 1) * cfg.sweep / 3 > 180:  # else sweep_cameras squeezes the steps
        raise UserError(f"--sweep {cfg.sweep:g} with --views {cfg.views}: {cfg.views - 1} steps of at least {cfg.sweep / 3:g} "
                        f"degrees do not fit within +-90; give --sweep <= {540 / (cfg.views - 1):g} or fewer --views")
    # about one byte per pixel of PNG: a cheap estimate that stops --subjects 10**9 before it starts
    out = check_output_folder(out, "OUT", need_bytes=cfg.subjects * cfg.frames * cfg.views * (1 + cfg.conditions) * cfg.res**2)
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("subjects", "workers")}
    meta = out / "synth.json"
    if meta.exists():
        try:
            old = json.loads(meta.read_text())
        except json.JSONDecodeError:
            raise UserError(f"{meta} is not a `dp3d synth` settings file; use a new folder") from None
        old = {k: v for k, v in {**asdict(SynthConfig()), **old}.items() if k in settings}
        if old != settings:  # (fields added since the dataset was made count with their defaults)
            raise UserError(f"{out} holds a dataset made with other settings ({old}); use a new folder")
    else:
        with atomic_path(meta) as tmp:
            tmp.write_text(json.dumps(settings, indent=1))
    remove_partials(out)  # left by a run that was killed mid-subject
    if (out / "conditions").is_dir():
        remove_partials(out / "conditions")
    todo = [i for i in range(cfg.subjects) if not (out / f"subject{i:04d}" / "labels.json").exists()]
    if len(todo) < cfg.subjects:
        logger.info("resuming: %d of %d subjects already rendered", cfg.subjects - len(todo), cfg.subjects)
    bar = tqdm(total=cfg.subjects, initial=cfg.subjects - len(todo), desc="synth", unit="subject", disable=not progress)
    jobs = [(cfg, out, i) for i in todo]
    threads = torch.get_num_threads()
    # the renderer works on small tensors: intra-op threads only add contention (on a busy machine
    # two spinning OpenMP threads made it 100x slower); parallelism comes from --workers
    torch.set_num_threads(1)
    try:
        if cfg.workers > 1 and len(todo) > 1:
            with ProcessPoolExecutor(cfg.workers) as pool:
                for _ in pool.map(_worker, jobs):
                    bar.update()
        else:
            for job in jobs:
                render_subject(*job)
                bar.update()
    finally:
        torch.set_num_threads(threads)
        bar.close()
    return _write_index(out, cfg)


def made_by_synth(image: str | os.PathLike) -> bool:
    """Whether an image lies in a dataset folder `synth` wrote (subject/frame/cam.png under synth.json)."""
    return any((p / "synth.json").is_file() for p in Path(image).absolute().parents[:3])


def _write_index(out: Path, cfg: SynthConfig) -> Path:
    labels, subjects = [], {}
    for i in range(cfg.subjects):
        plan = subject_plan(cfg, i)
        labels += json.loads((out / plan["name"] / "labels.json").read_text())
        plan["identity"] = Identity.sample(plan["identity_seed"]).to_dict()
        subjects[plan.pop("name")] = plan
    with atomic_path(out / "subjects.json") as tmp:
        tmp.write_text(json.dumps(subjects))
    with atomic_path(out / "dataset.json") as tmp:
        tmp.write_text(json.dumps({"labels": labels}))
    return out / "dataset.json"
