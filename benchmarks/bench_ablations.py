"""The paper's ablations and each of our own additions switched off, on held-out identities, every difference
beside the chance spread of two noise seeds of the full model (issue 36; DESIGN.md section 7).

    python benchmarks/bench_ablations.py [--model mini [--model DIR ...]] [--identity-seed 1000] [--subjects 4]
        [--steps 20] [--noise-seeds 0,1] [--sampling release,ours] [--rows all] [--carriers 0-7]
        [--threads 2] [--out DIR] [--quick]

Held-out subjects are bench_miniature_quality's (`dp3d synth --frames 1 --views 6 --seed SEED` heads, seed 1000 by
default; 5000 is kept for a final report; 3000 judged five recipe runs, 4000 the sixth and take ten): the reference is each subject's first camera, the other five are targets.
Every model is measured on the same subjects, gallery identities and noise seeds.

Samplings (both exact DDIM, guidance 3, eta 0.5, --steps steps: the release's is 50):
- release: the release's sampling: independent groups of 8 views, the release's noise (noise_mean keep), the
  3D-aware start (the noise model's proxy taken to t = 999);
- ours: the model folder's defaults: its noise_mean (mini: reference, the colour pull) and the pipeline's view plan
  (16 views: shifted+camera).

What is generated, per subject (the measures are bench_miniature_quality's functions):
- targets: the five targets; SSIM to the truth (mean, worst), identity retrieval among 8, yaw error by
  render-and-compare;
- recon: 4 draws at the reference's own camera, camera given: SSIM to the reference (mean, worst), colour error of
  the face (central quarter) and of the background (border), 0-255;
- orbit: a 16-view yaw orbit -45..45 (two groups): flicker ratio, flicker ratio between views both >= 30 degrees from
  the reference's camera (what the reference does not show), background drift, largest step / median (worst subject).

Rows: the full model with every noise seed, then each ablation with the first seed (the same noise as the full
model's first draw, so the difference is paired):
- modules:    the view-consistency modules off (paper Fig. 5, Table 2), judged on flicker, background drift, largest step;
- gaussian:   Gaussian instead of 3D-aware initial noise (Fig. 5, Table 2), judged the same way;
- reference:  the reference UNet as initialised, a copy of the model's own backbone (what `dp3d init` makes; paper
              Table 1b), the read path's position bias kept; judged on novel SSIM and identity retrieval;
- controlnet: the view ControlNet off, judged on yaw error against the full model's with its WORST carrier;
- position:   ours: the read path's position bias off (reference_position None), judged on reconstruction SSIM;
- colour:     ours: the colour pull off (noise_mean remove; ours only: the release keeps the noise), judged on the
              face and background colour error at the reference's camera;
- camera:     ours: the camera-correlated noise off (the default view plan without +camera; ours only, matters only
              beyond one group: the orbit), judged on flicker, background drift, largest step;
- carriers:   appendix B.4: the targets once per carrier identity (--carriers, default 0-7: both short-hair ones, 2 and
              6, and the default 7), the first noise seed: yaw error per carrier (the largest, and max - min across
              carriers), and how far each carrier's views are from the default carrier's (mean |difference|, 0-255, and
              |yaw difference|) beside how far two noise seeds' views are with the default carrier.
A row generates only the parts it is judged on (the rest: "·" in the table, grey in the figure), or "=" where
they are the full model's by construction (the camera-correlated noise on 4 or 5 views, one group).

Chance spread: for each figure, max - min over the full model's noise seeds. Verdict: "yes" when the ablation is
worse than the full model (first seed) by more than the spread on that figure.

Writes into --out (default bench_ablations_out): ablations.md (the tables, also printed), ablations.json and
ablations.png (per model and sampling, the first subject: its reference's camera, the five targets and 4 orbit
views; one strip per row, the truth on top).

Time, one model, both samplings, all rows: the default (4 subjects, 20 steps, carriers 0-7) is 172 generations,
24,400 view-steps, estimated ~24 min on one idle core with 1 thread (from the CPU time of smoke runs on a busy
machine; --threads 2 on two idle cores should be faster, not measured); --quick (1 subject, 2 steps, carriers 2,6)
took 72 s of CPU. Each further model adds as much; --rows and --sampling cut it.
"""

import argparse
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_miniature_quality import (ORBIT, gallery_at, gallery_identities, orbit_angles,  # noqa: E402
                                     orbit_measures, target_measures)

from diffportrait3d.atomic import atomic_folder  # noqa: E402
from diffportrait3d.cameras import camera_labels  # noqa: E402
from diffportrait3d.cli.main import OneLineParser  # noqa: E402
from diffportrait3d.conditions.sources import model_condition_seed  # noqa: E402
from diffportrait3d.errors import UserError  # noqa: E402
from diffportrait3d.media import grid, tensor_to_pil  # noqa: E402
from diffportrait3d.metrics.heldout import HeldoutSubject, draws_at, generate_views  # noqa: E402
from diffportrait3d.pipeline.loading import load_pipeline  # noqa: E402
from diffportrait3d.pipeline.model_folder import resolve_model  # noqa: E402
from diffportrait3d.pipeline.noise_mean import canonical_noise_mean  # noqa: E402
from diffportrait3d.pipeline.view_windows import DEFAULT as DEFAULT_PLAN, ViewPlan  # noqa: E402

TARGETS, DRAWS = 5, 4  # views per subject: bench_miniature_quality's targets, draws at the reference's camera
UNSEEN_DEGREES = 30.0  # orbit views this far from the reference's camera show what the reference does not
FIGURE_ORBIT = (0, 5, 10, 15)  # orbit views in the figure
SHORT_HAIR = (2, 6)  # the carriers with short hair (condition seeds)
DEFAULT_CONDITION_SEED = 7  # the carrier the miniature models name in model_index.json (run_model checks it)
# CPU seconds (1 thread) per generated view and denoising step, per generation (proxies, VAE, yaw estimates) and per
# subject (renders of the truth and the gallery): from the CPU time of smoke runs on a busy machine (nice 19), so an
# estimate for one idle core; the progress bar's ETA is live
SECONDS_PER_VIEW_STEP, SECONDS_PER_GENERATION, SECONDS_PER_SUBJECT = 0.05, 1.1, 8.0

SAMPLINGS = {  # generate_views keywords
    "release": {"views": "groups", "noise_mean": "keep"},
    "ours": {"views": None, "noise_mean": None},
}
NO_CAMERA_PLAN = replace(ViewPlan.parse(DEFAULT_PLAN), noise="independent").name  # shifted+camera -> shifted

# figure key -> (label, "low" or "high" is better, format)
METRICS = {
    "ssim": ("novel SSIM", "high", ".3f"), "ssim_worst": ("worst novel SSIM", "high", ".3f"),
    "retrieval": ("identity retrieval", "high", ".3f"), "yaw": ("yaw error (deg)", "low", ".1f"),
    "rec": ("reconstruction SSIM", "high", ".3f"), "rec_worst": ("worst reconstruction", "high", ".3f"),
    "face": ("face colour error", "low", ".1f"), "bg": ("background colour error", "low", ".1f"),
    "flicker": ("flicker ratio", "low", ".3f"), "flicker_unseen": ("flicker away from the reference", "low", ".3f"),
    "drift": ("background drift", "low", ".1f"), "jump": ("largest step / median", "low", ".2f"),
}
PART_METRICS = {"targets": ("ssim", "ssim_worst", "retrieval", "yaw"), "recon": ("rec", "rec_worst", "face", "bg"),
                "orbit": ("flicker", "flicker_unseen", "drift", "jump")}
PART_VIEWS = {"targets": TARGETS, "recon": DRAWS, "orbit": len(ORBIT)}
ORBIT_FIGURES = ("flicker", "drift", "jump")


@contextlib.contextmanager
def initial_reference(pipe):
    """The reference UNet as `dp3d init` makes it: a copy of the model's own (frozen) backbone."""
    saved = {k: v.clone() for k, v in pipe.reference_unet.state_dict().items()}
    pipe.reference_unet.load_state_dict(pipe.unet.state_dict())
    try:
        yield
    finally:
        pipe.reference_unet.load_state_dict(saved)


@contextlib.contextmanager
def no_position_bias(pipe):
    saved, entry = pipe.reference_position, pipe.config.reference_position
    pipe.reference_position = None
    try:
        yield
    finally:
        pipe.reference_position = saved
        pipe.register_to_config(reference_position=entry)  # diffusers' setattr left (None, None) there


@dataclass(frozen=True)
class Row:
    key: str
    name: str
    origin: str
    parts: tuple[str, ...]      # what is generated for it (the rest is the full model's, or not needed)
    judged: tuple[str, ...]     # the figures its component exists for
    kw: dict = field(default_factory=dict)        # generate_views keywords
    ours: dict = field(default_factory=dict)      # sampling keywords it changes (a row only of our sampling)
    swap: object = None         # context manager (pipe): the ablated model
    same: tuple[str, ...] = ()  # parts that are the full model's by construction (not generated)

    def not_applicable(self, pipe, sampling: str) -> str | None:
        """Why this row is the full model itself here, or None."""
        if self.ours and sampling != "ours":
            return "already off in the release's sampling"
        if self.key == "gaussian" and pipe.noise_model is None:
            return "the model has no 3D-aware noise model"
        if self.key == "position" and pipe.reference_position is None:
            return "the model has no position bias"
        if self.key == "colour" and canonical_noise_mean(pipe.config.noise_mean) != "colour_pull":
            return f"the model's noise_mean is {pipe.config.noise_mean}, no colour pull"
        if self.key == "camera" and NO_CAMERA_PLAN == DEFAULT_PLAN:
            return "the default view plan has no camera-correlated noise"
        return None


FULL = Row("full", "full model", "", ("targets", "recon", "orbit"), ())
ROWS = {r.key: r for r in (
    Row("modules", "view modules off", "paper Fig. 5, Tab. 2", ("orbit",), ORBIT_FIGURES, {"modules": False}),
    Row("gaussian", "Gaussian noise", "paper Fig. 5, Tab. 2", ("orbit",), ORBIT_FIGURES, {"proxy": None}),
    Row("reference", "reference UNet as initialised", "paper Tab. 1b", ("targets", "recon"), ("ssim", "retrieval"),
        swap=initial_reference),
    Row("controlnet", "view ControlNet off", "paper (camera control)", ("targets",), ("yaw",), {"control": 0.0}),
    Row("position", "position bias off", "ours", ("targets", "recon"), ("rec",), swap=no_position_bias),
    Row("colour", "colour pull off", "ours", ("targets", "recon"), ("face", "bg"), ours={"noise_mean": "remove"}),
    Row("camera", "camera-correlated noise off", "ours", ("orbit",), ORBIT_FIGURES, ours={"views": NO_CAMERA_PLAN},
        same=("targets", "recon")),  # one group of views: the plan's noise is independent there either way
)}
ROW_KEYS = tuple(ROWS) + ("carriers",)


# -- arguments --------------------------------------------------------------------------------------------------
def int_list(text: str, what: str) -> list[int]:
    """'0,1' or '0-7' (or a mix: '0-3,7') -> distinct non-negative integers, in order."""
    out = []
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            out += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
    except ValueError:
        raise UserError(f"{what} must be integers like 0,1 or 0-7, got {text!r}") from None
    if not out or min(out) < 0:
        raise UserError(f"{what} must be non-negative integers, got {text!r}")
    return list(dict.fromkeys(out))


def names(text: str, allowed, what: str) -> list[str]:
    if text == "all":
        return list(allowed)
    got = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in got if t not in allowed]
    if bad or not got:
        raise UserError(f"{what}: unknown {', '.join(bad) or repr(text)}; choose from {', '.join(allowed)} or all")
    return [a for a in allowed if a in got]


def parse_args(argv=None):
    ap = OneLineParser(prog="bench_ablations.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", help="model folder, hub id or mini (default); repeat to compare models")
    ap.add_argument("--identity-seed", "--seed", dest="seed", type=int, default=1000,
                    help="held-out identities' dataset seed (the shipped model trained on 0; 5000 is kept for a final report)")
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20, help="DDIM steps for both samplings (the release uses 50)")
    ap.add_argument("--noise-seeds", default="0,1", help="the full model's noise seeds (>= 2: the chance spread); ablations use the first")
    ap.add_argument("--sampling", default="release,ours", help="release, ours or both")
    ap.add_argument("--rows", default="all", help=f"ablation rows, from {','.join(ROW_KEYS)} (the full model always runs)")
    ap.add_argument("--carriers", default="0-7", help="condition seeds for the carriers row (B.4: at least 8, with 2 and 6)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="bench_ablations_out", help="folder for ablations.md, .json and .png (other files kept)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 subject, 2 steps, carriers 2,6 (about a minute)")
    a = ap.parse_args(argv)
    try:
        a.models = a.model or ["mini"]
        for m in a.models:
            resolve_model(m)
        if a.quick:
            a.subjects, a.steps, a.carriers = 1, 2, "2,6"
        for arg, value, lo, hi in (("--subjects", a.subjects, 1, 10_000), ("--steps", a.steps, 1, 1000),
                                   ("--threads", a.threads, 1, 1024), ("--identity-seed", a.seed, 0, 2**32 - 1)):
            if not lo <= value <= hi:
                raise UserError(f"{arg} must be in {lo}..{hi}, got {value}")
        a.noise_seeds = int_list(a.noise_seeds, "--noise-seeds")
        if len(a.noise_seeds) < 2:
            raise UserError("--noise-seeds needs at least two seeds: their difference is the chance spread")
        a.samplings = names(a.sampling, SAMPLINGS, "--sampling")
        a.row_keys = names(a.rows, ROW_KEYS, "--rows")
        a.carrier_seeds = [c for c in int_list(a.carriers, "--carriers") if c != DEFAULT_CONDITION_SEED]
        if "carriers" in a.row_keys and not a.carrier_seeds:
            raise UserError(f"--carriers: give at least one carrier besides the default ({DEFAULT_CONDITION_SEED})")
        out = Path(a.out)
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {a.out} is a file; give a folder")
        for name in ("ablations.md", "ablations.json", "ablations.png"):
            if (out / name).is_dir():
                raise UserError(f"--out: {out / name} is a folder in the way")
    except UserError as e:
        ap.exit(2, f"{ap.prog}: error: {e}\n")
    return a


# -- measuring --------------------------------------------------------------------------------------------------
def unseen_flicker(gen: torch.Tensor, truth: torch.Tensor, subject: HeldoutSubject) -> float | None:
    """Flicker ratio over the orbit's neighbour pairs both >= UNSEEN_DEGREES from the reference's camera (None: no such pair)."""
    pos = camera_labels(ORBIT, np.zeros_like(ORBIT))[:, [3, 7, 11]]
    ref = np.asarray(subject.labels[0])[[3, 7, 11]]
    cos = pos @ ref / np.linalg.norm(pos, axis=1) / np.linalg.norm(ref)
    far = np.degrees(np.arccos(np.clip(cos, -1, 1))) >= UNSEEN_DEGREES
    pairs = torch.as_tensor(far[1:] & far[:-1])
    if not pairs.any():
        return None
    change = lambda x: (x[1:] - x[:-1]).abs().mean((1, 2, 3))[pairs].mean().item()  # noqa: E731
    return change(gen) / change(truth)


class Subject:
    """A held-out subject with what every model's measures need: gallery, orbit truth (made once)."""

    def __init__(self, seed: int, i: int, others):
        self.s = HeldoutSubject(seed, i)
        self.targets = self.s.angles[1:]
        self.gallery = gallery_at(self.s, self.targets, others)
        self.orbit_truth = torch.stack([self.s.render(y) for y in ORBIT])


def measure(pipe, subj: Subject, part: str, steps: int, seed: int, kw: dict) -> tuple[dict, torch.Tensor]:
    """(figures of one subject, the generated views) for one part."""
    s = subj.s
    if part == "targets":
        gen = generate_views(pipe, s, subj.targets, steps, seed=seed, **kw)
        m = target_measures(gen, s, subj.targets, subj.gallery)
        return {"ssim": m["ssim"], "retrieval": m["retrieval"], "yaw": m["yaw"], "yaw_estimate": m["yaw_estimate"], "views": gen}, gen
    if part == "recon":
        d = draws_at(pipe, s, s.angles[0], steps, draws=DRAWS, seed=seed, **{k: v for k, v in kw.items() if k != "views"})
        return {"rec": d["ssim"], "face": d["face_error"], "bg": d["background_error"]}, d["images"]
    gen = generate_views(pipe, s, orbit_angles(), steps, seed=seed, **kw)
    m = orbit_measures(gen, subj.orbit_truth)
    return {"flicker": m["flicker"], "flicker_unseen": unseen_flicker(gen, subj.orbit_truth, s), "drift": m["bg_drift"],
            "jump": m["jump"]}, gen


def aggregate(per_subject: dict) -> dict:
    """part -> [per-subject dicts] -> the row's figures over the subjects."""
    out = {}
    if per_subject.get("targets"):
        t = per_subject["targets"]
        ssims = np.concatenate([m["ssim"] for m in t])
        out.update(ssim=float(ssims.mean()), ssim_worst=float(ssims.min()), retrieval=float(np.mean([m["retrieval"] for m in t])),
                   yaw=float(np.mean(np.concatenate([m["yaw"] for m in t]))))
    if per_subject.get("recon"):
        r = per_subject["recon"]
        rec = np.concatenate([m["rec"] for m in r])
        out.update(rec=float(rec.mean()), rec_worst=float(rec.min()), face=float(np.mean([m["face"] for m in r])),
                   bg=float(np.mean([m["bg"] for m in r])))
    if per_subject.get("orbit"):
        o = per_subject["orbit"]
        unseen = [m["flicker_unseen"] for m in o if m["flicker_unseen"] is not None]
        out.update(flicker=float(np.mean([m["flicker"] for m in o])), flicker_unseen=float(np.mean(unseen)) if unseen else None,
                   drift=float(np.mean([m["drift"] for m in o])), jump=float(np.max([m["jump"] for m in o])))
    return out


def worse_by(metric: str, full: float, ablated: float) -> float:
    return ablated - full if METRICS[metric][1] == "low" else full - ablated


@dataclass
class Plan:
    """Every generation of one model, in order: (sampling, row, seed, part), or (sampling, "carrier", c, "targets")."""

    jobs: list

    def view_steps(self, steps: int) -> int:
        return sum(PART_VIEWS[part] for *_, part in self.jobs) * steps


def plan_jobs(pipe, a) -> tuple[Plan, dict]:
    jobs, skipped = [], {}
    for sampling in a.samplings:
        for seed in a.noise_seeds:
            jobs += [(sampling, "full", seed, part) for part in FULL.parts]
        for key in a.row_keys:
            if key == "carriers":
                jobs += [(sampling, "carrier", c, "targets") for c in a.carrier_seeds]
                continue
            row = ROWS[key]
            why = row.not_applicable(pipe, sampling)
            if why:
                skipped[(sampling, key)] = why
                continue
            jobs += [(sampling, key, a.noise_seeds[0], part) for part in row.parts]
    return Plan(jobs), skipped


def run_model(pipe, subjects, a, bar) -> dict:
    """Raw per-subject figures and the first subject's images: results[sampling][row][seed][part] = [dicts]."""
    if model_condition_seed(pipe) != DEFAULT_CONDITION_SEED:
        raise UserError(f"the carriers row compares with carrier {DEFAULT_CONDITION_SEED}, this model's default is "
                        f"{model_condition_seed(pipe)}; package it with scripts/package_miniature.py")
    plan, skipped = plan_jobs(pipe, a)
    raw, images = {}, {}
    for si, subj in enumerate(subjects):
        for sampling, key, seed, part in plan.jobs:
            base = dict(SAMPLINGS[sampling])
            if key == "carrier":
                kw, swap = dict(base, condition_seed=seed), contextlib.nullcontext()
                seed_used = a.noise_seeds[0]
            else:
                row = FULL if key == "full" else ROWS[key]
                kw = dict(base, **row.ours, **row.kw)
                swap, seed_used = row.swap(pipe) if row.swap else contextlib.nullcontext(), seed
            with swap:
                m, gen = measure(pipe, subj, part, a.steps, seed_used, kw)
            raw.setdefault(sampling, {}).setdefault(key, {}).setdefault(seed, {}).setdefault(part, []).append(m)
            if si == 0:
                images[(sampling, key, seed, part)] = gen
            bar.update(PART_VIEWS[part] * a.steps)
    return {"raw": raw, "images": images, "skipped": skipped}


# -- tables -----------------------------------------------------------------------------------------------------
def fmt(metric: str, v) -> str:
    return "—" if v is None else format(v, METRICS[metric][2])


def summarise(result: dict, a) -> dict:
    """Per sampling: the rows' figures, the chance spread, the verdicts and the carriers (JSON-ready)."""
    summary = {}
    for sampling, rows in result["raw"].items():
        full = {seed: aggregate(rows["full"][seed]) for seed in a.noise_seeds}
        spread = {k: float(max(f[k] for f in full.values()) - min(f[k] for f in full.values()))
                  for k in METRICS if all(f.get(k) is not None for f in full.values())}
        first = full[a.noise_seeds[0]]
        s = summary[sampling] = {"full": {str(k): v for k, v in full.items()}, "spread": spread, "rows": {}, "verdicts": [],
                                 "not_applicable": {k: why for (sm, k), why in result["skipped"].items() if sm == sampling}}
        carriers = carrier_summary(rows, a, first) if "carrier" in rows else None
        if carriers:
            s["carriers"] = carriers
        for key, row in ROWS.items():
            if key not in rows:
                continue
            fig = s["rows"][key] = aggregate(rows[key][a.noise_seeds[0]])
            for metric in row.judged:
                reference, note = first[metric], ""
                if key == "controlnet" and carriers:  # the camera must be read whichever identity carries it
                    reference, note = carriers["yaw_error_max"], f"worst of {len(carriers['per_carrier'])} carriers"
                d = worse_by(metric, reference, fig[metric])
                s["verdicts"].append({"row": key, "figure": metric, "full": reference, "ablated": fig[metric], "worse_by": d,
                                      "spread": spread.get(metric), "beats": bool(d > spread.get(metric, np.inf)), "note": note})
    return summary


def carrier_summary(rows: dict, a, first: dict) -> dict:
    """B.4: per carrier yaw error and SSIM; each carrier's views against the default carrier's (same noise), beside
    the default carrier's two noise seeds against each other."""
    s0, s1 = a.noise_seeds[:2]
    default = rows["full"][s0]["targets"]
    per = {DEFAULT_CONDITION_SEED: {"yaw": first["yaw"], "ssim": first["ssim"], "pixel": 0.0, "yaw_diff": 0.0}}
    for c in a.carrier_seeds:
        t = rows["carrier"][c]["targets"]
        agg = aggregate({"targets": t})
        per[c] = {"yaw": agg["yaw"], "ssim": agg["ssim"], "pixel": float(np.mean(t_pixel_diffs(rows, c, s0))),
                  "yaw_diff": float(np.mean(np.abs(np.concatenate([m["yaw_estimate"] for m in t])
                                                    - np.concatenate([m["yaw_estimate"] for m in default]))))}
    seeds_yaw = np.abs(np.concatenate([m["yaw_estimate"] for m in rows["full"][s1]["targets"]])
                       - np.concatenate([m["yaw_estimate"] for m in default]))
    others = [c for c in per if c != DEFAULT_CONDITION_SEED]
    yaws = [p["yaw"] for p in per.values()]
    return {"per_carrier": {str(c): p for c, p in per.items()},
            "noise_seeds_pixel": float(np.mean(t_pixel_diffs(rows, None, s0, s1))), "noise_seeds_yaw_diff": float(seeds_yaw.mean()),
            "carriers_pixel": float(np.mean([per[c]["pixel"] for c in others])),
            "carriers_yaw_diff": float(np.mean([per[c]["yaw_diff"] for c in others])),
            "yaw_error_max": float(max(yaws)), "yaw_error_spread": float(max(yaws) - min(yaws)),
            "short_hair": [c for c in SHORT_HAIR if c in per]}


def t_pixel_diffs(rows, carrier, s0, s1=None) -> list[float]:
    """Mean |difference| (0-255) per subject between the carrier's targets and the default carrier's (first seed),
    or (carrier None) between the default carrier's targets at seeds s0 and s1."""
    a_views = rows["full"][s0]["targets"]
    b_views = rows["full"][s1]["targets"] if carrier is None else rows["carrier"][carrier]["targets"]
    return [float((x["views"] - y["views"]).abs().mean() * 127.5) for x, y in zip(a_views, b_views)]


def markdown(model: str, summary: dict, a, seconds: float) -> str:
    lines = [f"## {model}", "",
             f"held-out identity seed {a.seed}, {a.subjects} subjects ({TARGETS} targets, {DRAWS} draws at the reference's "
             f"camera, a {len(ORBIT)}-view orbit each), {a.steps} DDIM steps, noise seeds {','.join(map(str, a.noise_seeds))} "
             f"(ablations: {a.noise_seeds[0]}); {seconds / 60:.1f} min", ""]
    cols = [m for m in METRICS]
    for sampling, s in summary.items():
        lines += [f"### sampling: {sampling}", "", f"Ablations with noise seed {a.noise_seeds[0]}; ·: not generated for that row "
                  "(not judged there), =: the full model's by construction.", "", "| row | " + " | ".join(METRICS[m][0] for m in cols) + " |",
                  "|---|" + "---|" * len(cols)]
        for seed, f in s["full"].items():
            lines.append(f"| full model, seed {seed} | " + " | ".join(fmt(m, f.get(m)) for m in cols) + " |")
        lines.append("| *chance spread* | " + " | ".join(fmt(m, s["spread"].get(m)) for m in cols) + " |")
        for key, fig in s["rows"].items():
            same = {m for p in ROWS[key].same for m in PART_METRICS[p]}
            cells = [fmt(m, fig[m]) if m in fig else "=" if m in same else "·" for m in cols]
            lines.append(f"| {ROWS[key].name} ({ROWS[key].origin}) | " + " | ".join(cells) + " |")
        for key, why in s["not_applicable"].items():
            lines.append(f"| {ROWS[key].name} | n/a: {why} |" + " |" * (len(cols) - 1))
        lines += ["", "| ablation | figure | full model | ablated | ablation worse by | chance spread | beats it by more than the spread |",
                  "|---|---|---|---|---|---|---|"]
        for v in s["verdicts"]:
            m = v["figure"]
            note = f" ({v['note']})" if v["note"] else ""
            lines.append(f"| {ROWS[v['row']].name} | {METRICS[m][0]} | {fmt(m, v['full'])}{note} | {fmt(m, v['ablated'])} | "
                         f"{fmt(m, v['worse_by'])} | {fmt(m, v['spread'])} | {'yes' if v['beats'] else 'NO'} |")
        c = s.get("carriers")
        if c:
            lines += ["", f"Carriers (appendix B.4; the default is {DEFAULT_CONDITION_SEED}, short hair: "
                          f"{', '.join(map(str, SHORT_HAIR))}), noise seed {a.noise_seeds[0]}:", "",
                      f"| carrier | yaw error (deg) | novel SSIM | views' difference from carrier {DEFAULT_CONDITION_SEED} (0-255) "
                      f"| yaw difference (deg) |", "|---|---|---|---|---|"]
            for cs, p in c["per_carrier"].items():
                mark = " (short hair)" if int(cs) in SHORT_HAIR else " (default)" if int(cs) == DEFAULT_CONDITION_SEED else ""
                lines.append(f"| {cs}{mark} | {p['yaw']:.1f} | {p['ssim']:.3f} | {p['pixel']:.2f} | {p['yaw_diff']:.1f} |")
            lines += ["", f"two carriers at one camera: {c['carriers_pixel']:.2f} (0-255) and {c['carriers_yaw_diff']:.1f} deg apart; "
                          f"two noise seeds with carrier {DEFAULT_CONDITION_SEED}: {c['noise_seeds_pixel']:.2f} and "
                          f"{c['noise_seeds_yaw_diff']:.1f} deg. Yaw error: worst carrier {c['yaw_error_max']:.1f} deg, "
                          f"spread across carriers {c['yaw_error_spread']:.1f} deg."]
        lines.append("")
    lines += targets_table(summary, a)
    return "\n".join(lines)


def targets_table(summary: dict, a) -> list[str]:
    """Issue 36's targets, with our sampling unless said (the ablation verdicts with both)."""
    lines = ["### targets (issue 36; default settings = sampling ours, unless said)", "", "| target | value | met |", "|---|---|---|"]

    def add(name, value, ok):
        lines.append(f"| {name} | {value} | {'yes' if ok else 'NO'} |")

    s = summary.get("ours")
    if s:
        f = s["full"][str(a.noise_seeds[0])]
        add("novel-view SSIM >= 0.75 (worst >= 0.55)", f"{f['ssim']:.3f} ({f['ssim_worst']:.3f})", f["ssim"] >= 0.75 and f["ssim_worst"] >= 0.55)
        add("identity retrieval among 8 >= 0.9", f"{f['retrieval']:.3f}", f["retrieval"] >= 0.9)
        c = s.get("carriers")
        if c:
            n = len(c["per_carrier"])
            add(f"yaw error <= 5 deg with any carrier ({n} carriers)", f"worst {c['yaw_error_max']:.1f}", c["yaw_error_max"] <= 5)
            add("yaw error spread across carriers <= 5 deg" + ("" if n >= 8 else f" (only {n} carriers: B.4 asks for >= 8)"),
                f"{c['yaw_error_spread']:.1f}", c["yaw_error_spread"] <= 5)
            add("two carriers' views no further apart than 1.5 x two noise seeds'",
                f"{c['carriers_pixel']:.2f} vs 1.5 x {c['noise_seeds_pixel']:.2f}", c["carriers_pixel"] <= 1.5 * c["noise_seeds_pixel"])
        else:
            add("yaw error <= 5 deg (default carrier only: --rows carriers not run)", f"{f['yaw']:.1f}", f["yaw"] <= 5)
        add("largest orbit step <= 2 x the median (worst subject)", f"{f['jump']:.2f}", f["jump"] <= 2)
        add("reconstruction at the reference's camera (camera given) >= 0.9", f"{f['rec']:.3f}", f["rec"] >= 0.9)
    for sampling, s in summary.items():
        beats = [v for v in s["verdicts"] if v["beats"]]
        add(f"every ablation worse than the full model by more than the chance spread ({sampling} sampling)",
            f"{len(beats)} of {len(s['verdicts'])} figures", len(beats) == len(s["verdicts"]))
    return lines + [""]


# -- figure -----------------------------------------------------------------------------------------------------
def figure(blocks, scale: int = 2, label_width: int = 230, title: int = 18) -> Image.Image:
    """blocks: [(title, [(row label, [image (3, H, W) in [-1, 1] or None])])] -> one sheet, blocks stacked."""
    sheets = []
    for name, rows in blocks:
        size = next(im for _, ims in rows for im in ims if im is not None).shape[-1]
        blank = Image.new("RGB", (size, size), (200, 200, 200))
        tiles = grid([[blank if im is None else tensor_to_pil(im) for im in ims] for _, ims in rows])
        tiles = tiles.resize((tiles.width * scale, tiles.height * scale), Image.NEAREST)
        sheet = Image.new("RGB", (label_width + tiles.width, title + tiles.height), "white")
        sheet.paste(tiles, (label_width, title))
        draw = ImageDraw.Draw(sheet)
        draw.text((4, 3), name, fill="black")
        h = tiles.height / len(rows)
        for i, (label, _) in enumerate(rows):
            draw.text((4, title + i * h + h / 2 - 6), label, fill="black")
        sheets.append(sheet)
    out = Image.new("RGB", (max(s.width for s in sheets), sum(s.height for s in sheets)), "white")
    y = 0
    for s in sheets:
        out.paste(s, (0, y))
        y += s.height
    return out


def figure_blocks(model: str, result: dict, subject: Subject, a) -> list:
    """Per sampling: the truth, then each row of the first subject: reference camera (first draw) | targets | orbit views."""
    s, images, blocks = subject.s, result["images"], []
    orbit_idx = list(FIGURE_ORBIT)

    def strip(sampling, key, seed):
        def part(p, idx):
            g = images.get((sampling, key, seed, p))
            return [None] * len(idx) if g is None else [g[i] for i in idx]
        return part("recon", [0]) + part("targets", range(TARGETS)) + part("orbit", orbit_idx)

    for sampling in a.samplings:
        rows = [("truth (reference first)", [s.images[0]] + list(s.images[1:]) + [subject.orbit_truth[i] for i in orbit_idx])]
        rows += [(f"full model, seed {seed}", strip(sampling, "full", seed)) for seed in a.noise_seeds]
        rows += [(ROWS[k].name, strip(sampling, k, a.noise_seeds[0])) for k in ROWS if (sampling, k, a.noise_seeds[0], ROWS[k].parts[0]) in images]
        shown = [c for c in SHORT_HAIR if c in a.carrier_seeds] or a.carrier_seeds[:2]
        rows += [(f"carrier {c}" + (" (short hair)" if c in SHORT_HAIR else ""), strip(sampling, "carrier", c))
                 for c in shown if (sampling, "carrier", c, "targets") in images]
        blocks.append((f"{model}, sampling {sampling}: reference's camera | 5 targets | orbit yaw "
                       f"{', '.join(f'{ORBIT[i]:+.0f}' for i in orbit_idx)} (grey: not generated for that row)", rows))
    return blocks


# -- main -------------------------------------------------------------------------------------------------------
def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    rng = np.random.default_rng(a.seed)  # the gallery identities, as bench_miniature_quality draws them
    print(f"preparing {a.subjects} held-out subjects (identity seed {a.seed}; about "
          f"{a.subjects * SECONDS_PER_SUBJECT:.0f} s on one idle core) ...", flush=True)
    subjects = [Subject(a.seed, i, gallery_identities(rng)) for i in range(a.subjects)]
    print(f"prepared in {time.perf_counter() - t0:.0f} s", flush=True)
    pipes = {}
    for m in a.models:
        pipes[m] = load_pipeline(m, device="cpu")
        pipes[m].set_progress_bar_config(disable=True)
    plans = {m: plan_jobs(p, a)[0] for m, p in pipes.items()}
    view_steps = sum(p.view_steps(a.steps) for p in plans.values()) * a.subjects
    generations = sum(len(p.jobs) for p in plans.values()) * a.subjects
    estimate = view_steps * SECONDS_PER_VIEW_STEP + generations * SECONDS_PER_GENERATION
    print(f"{generations} generations, {view_steps} view-steps: about {estimate / 60:.0f} min on one idle core "
          f"(1 thread; less with --threads 2 on idle cores, more on a busy machine; the bar's ETA is live)", flush=True)
    results, md, blocks = {}, [], []
    with tqdm(total=view_steps, unit="view-step", desc="ablations", smoothing=0.05) as bar:
        for m, pipe in pipes.items():
            tm = time.perf_counter()
            result = run_model(pipe, subjects, a, bar)
            seconds = time.perf_counter() - tm
            summary = summarise(result, a)
            results[m] = {"summary": summary, "seconds": seconds}
            md.append(markdown(m, summary, a, seconds))
            blocks += figure_blocks(m, result, subjects[0], a)
    text = "\n".join(md)
    print("\n" + text)
    config = {k: v for k, v in vars(a).items() if k not in ("model",)}
    with atomic_folder(a.out) as tmp:
        (tmp / "ablations.md").write_text(f"# bench_ablations\n\n{text}")
        (tmp / "ablations.json").write_text(json.dumps({"config": config, "models": results}, indent=1))
        figure(blocks).save(tmp / "ablations.png")
    print(f"wrote {a.out}/ablations.md, .json, .png; total {(time.perf_counter() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
