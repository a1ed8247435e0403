"""`dp3d evaluate`: the paper's table (section 4.2) for one model on one EG3D-layout dataset.

Pairs (reference view, target view) of the same subject and frame are drawn reproducibly; the
"recon" split uses the reference camera as target, "novel" another camera. Each target gets a
condition image of a DIFFERENT identity at its camera from the built-in renderer. Rendered views
are cached under OUT/cache (keyed by the settings), so an interrupted run resumes.
"""

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..atomic import atomic_path
from ..cameras import FOCAL, label_to_angles
from ..conditions.sources import model_carrier_style, render_conditions
from ..data.eg3d_index import EG3DIndex
from ..data.synth_subjects import SynthSubjects, frame_number
from ..errors import UserError
from ..media import image_to_tensor
from ..metrics.report import Report, Row, write_report
from ..metrics.suite import PAPER_METRICS, compute_metrics
from ..pipeline.view_windows import DEFAULT
from ..preflight import check_output_folder, check_range
from .evaluate_orbits import orbit_row
from .reference_camera import label_or_given
from .render import load_model, sample
from .render_cache import cache_key
from .settings import RenderSettings, check_settings, view_plan

logger = logging.getLogger(__name__)
SPLITS = ("recon", "novel")


@dataclass
class EvalConfig:
    data: str
    output: str
    settings: RenderSettings  # model, device, dtype and sampler (steps, guidance, eta, seed, proxy auto|none, ...)
    pairs: int = 16            # pairs per split
    split: str = "both"        # recon | novel | both
    weights: str | None = None  # LPIPS / DISTS / FID weights folder (dp3d fetch-weights)
    gallery: int = 8           # identities per retrieval gallery (miniature world)
    orbits: int = 1            # closed orbits for seam ratio, loop closure, flicker ratio (0: none)
    orbit_views: int = 16      # (their view schedule: settings.group, settings.group_mode)


def sample_pairs(index: EG3DIndex, n: int, seed: int, split: str) -> list[tuple[int, int]]:
    groups = [g for g in index.groups.values() if len(g) >= (2 if split == "novel" else 1)]
    if not groups:
        raise UserError(f"{index.root}: no subject/frame has two views, so there are no novel-view pairs")
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    pairs = []
    for _ in range(n):
        g = groups[int(rng.integers(len(groups)))]
        ref, tgt = rng.choice(g, 2, replace=False) if split == "novel" else (rng.choice(g),) * 2
        pairs.append((int(ref), int(tgt)))
    return pairs


def evaluate(cfg: EvalConfig) -> dict:
    s = cfg.settings
    if cfg.split not in SPLITS + ("both",):
        raise UserError(f"--split must be recon, novel or both, got {cfg.split!r}")
    if s.proxy not in ("auto", "none"):
        raise UserError(f"--proxy must be auto or none for evaluation, got {s.proxy!r}")
    check_settings(s)
    check_range("--pairs", cfg.pairs, 1, 100_000, integer=True)
    if cfg.orbits < 0 or (cfg.orbits and cfg.orbit_views < 3):
        raise UserError("--orbits must be >= 0 and --orbit-views at least 3")
    orbit_method = view_plan(replace(s, group_mode=s.group_mode or DEFAULT)).name  # a bad --group-mode fails now
    check_output_folder(cfg.output)
    index = EG3DIndex(cfg.data)
    pipe = load_model(s)
    pipe.set_progress_bar_config(disable=True)
    size = pipe.image_size
    subjects = SynthSubjects(cfg.data)
    out = Path(cfg.output)
    rows, figure_rows = [], []
    for split in SPLITS if cfg.split == "both" else (cfg.split,):
        pairs = sample_pairs(index, cfg.pairs, s.seed, split)
        refs, tgts, conds, gens = render_split(pipe, index, pairs, cfg, size, out / "cache" / split)
        extra = miniature_metrics(subjects, index, pairs, size, cfg) if subjects else {}
        # POSE on real data: the landmark estimator with EG3D's focal (the dataset's framing)
        results = compute_metrics(gens, tgts, refs, weights_dir=cfg.weights, metrics=PAPER_METRICS + ("PSNR",),
                                  focal=FOCAL * size, **extra)
        rows.append(Row(method=Path(s.model).name or s.model, split=split, results=results, pairs=len(pairs)))
        figure_rows += [[refs[i], conds[i], gens[i], tgts[i]] for i in range(min(4, len(pairs)))]
    if cfg.orbits:
        rows.append(orbit_row(pipe, index, subjects, cfg, out / "cache" / "orbit", orbit_method))
    meta = {k: v for k, v in asdict(cfg).items() if k != "settings"}
    meta.update({k: getattr(s, k) for k in ("model", "mode", "steps", "guidance", "eta", "seed", "proxy", "group", "group_mode",
                                            "reference_camera")})
    paths = write_report(out, Report(rows, meta=meta), figure_rows)
    return {"paths": paths, "rows": rows}


@torch.no_grad()
def render_split(pipe, index, pairs, cfg, size, cache: Path):
    s = cfg.settings
    cache = cache / cache_key(s, pairs)
    cache.mkdir(parents=True, exist_ok=True)
    refs, tgts, conds, gens = [], [], [], []
    for i, (r, t) in enumerate(tqdm(pairs, desc=f"rendering {cache.parent.name}")):
        ref = image_to_tensor(index.views[r].path, size)
        label = index.views[t].label
        cond = render_conditions([label], size, 10_000 + s.seed * 1000 + i, model_carrier_style(pipe))[0]
        path = cache / f"{i:04d}.png"
        if not path.is_file():
            ref_label = label_or_given(s.reference_camera, index.views[r].label)  # auto: its label in the dataset
            view = sample(pipe, s, ref[None], [cond], label[None], reference_label=ref_label, seed=s.seed + i)[0]
            with atomic_path(path) as tmp:
                view.save(tmp, format="PNG")
        refs.append(ref)
        tgts.append(image_to_tensor(index.views[t].path, size))
        conds.append(image_to_tensor(cond, size))
        gens.append(image_to_tensor(Image.open(path), size))
    return torch.stack(refs), torch.stack(tgts), torch.stack(conds), torch.stack(gens)


def miniature_metrics(subjects: SynthSubjects, index, pairs, size, cfg) -> dict:
    """Render-and-compare POSE and identity retrieval for `dp3d synth` data, where face detectors see no face."""
    names = subjects.names
    renderers, angles, gallery, own = [], [], [], []
    rng = np.random.default_rng(cfg.settings.seed)
    for r, t in pairs:
        v = index.views[t]
        renderers.append(subjects.renderer(v.subject, frame_number(v.frame), size, ssaa=1))
        yaw, pitch, _ = label_to_angles(v.label)
        angles.append((yaw, pitch))
        others = [n for n in names if n != v.subject]
        cands = [v.subject] + list(rng.choice(others, min(cfg.gallery - 1, len(others)), replace=False))
        order = rng.permutation(len(cands))
        cands = [cands[j] for j in order]
        own.append(int(np.argmax(order == 0)))
        gallery.append(torch.stack([subjects.renderer(c, 0, size, ssaa=1)(yaw, pitch) for c in cands]))
    return dict(pose_renderers=renderers, target_angles=np.array(angles), id_gallery=torch.stack(gallery), id_own_index=own)
