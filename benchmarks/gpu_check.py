"""Seconds per view and peak GPU memory of the exact, fast and turbo modes, with and without torch.compile.

    bash benchmarks/gpu_check.sh                  # cuda, fp16, the sd15 preset (random weights), 512x512, --budget 420
    python benchmarks/gpu_check.py --device cpu --dtype float32 --preset tiny --compile off   # on the CPU, ~2 min
    python benchmarks/gpu_check.py [--device cuda] [--dtype fp16] [--preset sd15] [--res 512] [--views 8,16]
                                   [--modes exact,fast,turbo] [--compile both|on|off] [--repeats 2] [--budget S]
                                   [--out table.md]

The model is a preset's random weights (models/presets.py; speed and memory do not depend on the weight values,
so nothing is downloaded), with a turbo student made as the distill stage starts one: copies of the backbone and
its view modules registered as turbo_unet / turbo_view_modules, and a "turbo" entry in the config. Every mode runs
its real network passes and default step count: exact 50 DDIM steps and fast 10 UniPC steps, two backbone batches
each (guidance); turbo 4 DDIM steps of one batch (a guidance student, as `mini` ships). Views are sampled as
`dp3d render` samples them (groups of 8, the default view plan for more views) from a random reference, on
conditions rendered along a -40..40 yaw orbit.

Each cell (mode x views x compile) is one warm-up run (which compiles, when compiled), then the median of
--repeats runs, each between two device synchronisations; s/view = that median / views. Peak memory is
torch.cuda.max_memory_allocated over the cell's timed runs, the resident weights included ("n/a" off CUDA).
--compile on compiles the backbone UNet and the student's (--compile-modules to change which); the exact path's
window sizes and its reference keys/values (projected by a step's first window, reused by the others) make
several graphs per UNet, so the compiled 16-view cells compile again. If compiling fails, the compiled rows are
left out and a note under the table says why; when --budget seconds run out, the table holds the cells measured
so far and a note names the others.
"""

import argparse
import copy
import logging
import signal
import statistics
import time
from dataclasses import asdict

import numpy as np
import torch

from diffportrait3d.cameras import camera_labels
from diffportrait3d.conditions.sources import render_conditions
from diffportrait3d.models.presets import PRESETS
from diffportrait3d.pipeline.build import preset_components
from diffportrait3d.pipeline.loading import resolve_device
from diffportrait3d.pipeline.modes import MODES
from diffportrait3d.pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline
from diffportrait3d.pipeline.turbo import TurboConfig, require_student

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
YAW = 40.0  # the orbit's half-range in degrees, `dp3d render`'s default path


def build_pipe(preset: str, device: torch.device, dtype: torch.dtype, res: int | None) -> DiffPortrait3DPipeline:
    """A preset's random-weight pipeline with a turbo student, on `device` in `dtype`."""
    pipe = DiffPortrait3DPipeline(**preset_components(preset, seed=0))
    # the student as training/stages/distill.py starts it: copies of the backbone and its view modules, copied
    # together so that the copied backbone's view hooks belong to the copied view modules (`attach` replaces them)
    unet, view_modules = copy.deepcopy((pipe.unet, pipe.view_modules))
    pipe.register_modules(turbo_unet=unet, turbo_view_modules=view_modules)
    pipe.install_processors()
    pipe.register_to_config(turbo=asdict(TurboConfig(solver="ddim")))
    require_student(pipe)
    if res is not None:  # the UNets run at any latent size the down-sampling divides; sample_size sets image_size
        latent = res // pipe.vae_scale_factor
        if latent * pipe.vae_scale_factor != res or latent % 2 ** (len(pipe.unet.config.block_out_channels) - 1):
            raise SystemExit(f"--res {res}: not a size this preset's VAE and UNet divide evenly")
        for unet in (pipe.unet, pipe.reference_unet, pipe.turbo_unet):
            unet.register_to_config(sample_size=latent)
    pipe.set_progress_bar_config(disable=True)
    log = logging.getLogger("diffusers")
    level = log.level
    log.setLevel(logging.ERROR)  # its warning on every component's .to(dtype), about modules it has none of
    try:
        return pipe.to(device, dtype)
    finally:
        log.setLevel(level)


def parameter_count(pipe) -> int:
    names = ("vae", "unet", "reference_unet", "controlnet", "view_modules", "turbo_unet", "turbo_view_modules")
    return sum(p.numel() for n in names for p in getattr(pipe, n).parameters())


def inputs(views: int, size: int, seed: int = 0):
    """(reference (1,3,S,S) in [-1,1], condition images, their camera labels (views, 25)) along a yaw orbit."""
    labels = camera_labels(np.linspace(-YAW, YAW, views), np.zeros(views))
    reference = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return reference, render_conditions(labels, size), labels


def sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def render(pipe, mode: str, reference, conditions, labels, device) -> tuple[float, bool]:
    """One whole render (encode, every step, decode): (seconds, outputs finite)."""
    sync(device)
    t0 = time.perf_counter()
    images = pipe(reference, conditions, mode=mode, condition_labels=labels, output_type="pt",
                  generator=torch.Generator().manual_seed(0)).images
    sync(device)
    return time.perf_counter() - t0, bool(torch.isfinite(images).all())


def set_compiled(pipe, names: list[str], on: bool, backend: str = "inductor"):
    """Compile the named modules in place (nn.Module.compile: the pipeline, its hooks and processors keep the
    same module objects), or undo it."""
    for name in names:
        module = getattr(pipe, name)
        if on:
            module.compile(backend=backend)
        else:
            module._compiled_call_impl = None  # what nn.Module.compile set; no public undo


def cell(pipe, mode, views, inp, device, repeats) -> dict:
    first, finite = render(pipe, mode, *inp, device)  # warm-up: kernels, allocator, compilation
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        dt, ok = render(pipe, mode, *inp, device)
        times.append(dt)
        finite &= ok
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    median = statistics.median(times)
    return dict(mode=mode, views=views, median=median, per_view=median / views, first=first, peak=peak, finite=finite)


def steps_of(pipe, mode: str) -> int:
    return TurboConfig.from_config(pipe.config.get("turbo")).steps if MODES[mode].student else MODES[mode].steps


def table(rows: list[dict], pipe) -> str:
    lines = ["| mode | steps | views | compile | s/view | s/render | first run s | peak GPU GiB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        peak = "n/a" if r["peak"] is None else f"{r['peak']:.2f}"
        lines.append(f"| {r['mode']} | {steps_of(pipe, r['mode'])} | {r['views']} | {r['compile']} | {r['per_view']:.4f} | "
                     f"{r['median']:.3f} | {r['first']:.2f} | {peak} |")
    return "\n".join(lines)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="fp16", choices=sorted(DTYPES))
    ap.add_argument("--preset", default="sd15", choices=sorted(PRESETS))
    ap.add_argument("--res", type=int, default=None, help="image size (default: the preset's, 512 for sd15)")
    ap.add_argument("--views", default="8,16", help="comma-separated view counts")
    ap.add_argument("--modes", default="exact,fast,turbo", help="comma-separated sampling modes (pipeline.modes.MODES)")
    ap.add_argument("--compile", default="both", choices=["both", "on", "off"], help="torch.compile the backbone UNets")
    ap.add_argument("--compile-modules", default="unet,turbo_unet", help="which pipeline modules --compile compiles")
    ap.add_argument("--compile-backend", default="inductor", help="torch.compile backend ('eager': trace only, a quick check)")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per cell after the warm-up (median)")
    ap.add_argument("--budget", type=int, default=0, help="seconds: stop measuring then and print what was measured "
                    "(0: no limit); the cells left out are named under the table")
    ap.add_argument("--out", default=None, help="also write the table as markdown to this file")
    a = ap.parse_args(argv)
    a.views = [int(v) for v in a.views.split(",")]
    a.modes = a.modes.split(",")
    a.compile_modules = a.compile_modules.split(",")
    for m in a.modes:
        if m not in MODES:
            ap.error(f"--modes: unknown mode {m!r}; choose from {', '.join(MODES)}")
    if a.repeats < 1 or min(a.views) < 1 or a.budget < 0:
        ap.error("--repeats and --views must be >= 1, --budget >= 0")
    return a


class OutOfTime(BaseException):
    """--budget ran out (a BaseException, so that no library's `except Exception` swallows it)."""


def _out_of_time(signum, frame):
    raise OutOfTime


def measure(pipe, a, inp, device, rows: list, notes: list):
    """Every cell of the grid into `rows`, eager first; compiled cells that fail to compile are noted, not raised."""
    for compiled in {"both": [False, True], "on": [True], "off": [False]}[a.compile]:
        if compiled:
            import torch._dynamo
            from torch._dynamo.utils import counters  # here: importing dynamo costs seconds

            torch._dynamo.reset()
            counters.clear()
            # the backbone and the student share one code object, so their graphs (window sizes, the reference K/V
            # projected or reused within a step) count against one recompile limit (8): past it, dynamo would run
            # eager without saying so in the table
            torch._dynamo.config.recompile_limit = torch._dynamo.config.cache_size_limit = 64
        try:
            if compiled:
                set_compiled(pipe, a.compile_modules, True, a.compile_backend)
            for v in a.views:
                for m in a.modes:
                    r = cell(pipe, m, v, inp[v], device, a.repeats)
                    r["compile"] = "on" if compiled else "off"
                    rows.append(r)
                    print(f"  {m} x {v} views, compile {r['compile']}: {r['per_view']:.4f} s/view", flush=True)
        except Exception as e:  # noqa: BLE001  a compiler failure is reported, and the eager rows still stand
            if not compiled:
                raise
            first = (str(e).strip().splitlines() or ["no message"])[0][:300]
            notes.append(f"torch.compile failed ({type(e).__name__}: {first}); the compiled rows are left out")
            rows[:] = [r for r in rows if r["compile"] == "off"]
        finally:
            if compiled:
                set_compiled(pipe, a.compile_modules, False)
            if compiled and any(r["compile"] == "on" for r in rows):
                breaks = sum(counters["graph_break"].values())
                notes.append(f"compile on: torch.compile of {', '.join(a.compile_modules)} (backend {a.compile_backend}, "
                             f"default mode): {counters['stats']['unique_graphs']} graphs, {breaks} graph breaks; "
                             "'first run s' includes compiling")


def main(argv=None) -> list[dict]:
    t_start = time.perf_counter()
    a = parse_args(argv)
    device, dtype = resolve_device(a.device), DTYPES[a.dtype]
    if device.type == "cpu" and dtype == torch.float16:
        raise SystemExit("fp16 on the CPU is not supported by torch's kernels; use --dtype float32 or bf16 there")
    if a.budget:
        handler = signal.signal(signal.SIGALRM, _out_of_time)
        signal.alarm(a.budget)
    rows, notes = [], []
    try:
        t0 = time.perf_counter()
        pipe = build_pipe(a.preset, device, dtype, a.res)
        size = pipe.image_size
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        header = (f"gpu_check: preset {a.preset} (random weights, {parameter_count(pipe) / 1e9:.3f} B parameters with the "
                  f"student), {size}x{size}, {a.dtype}, {name}, torch {torch.__version__}; built in "
                  f"{time.perf_counter() - t0:.1f} s; median of {a.repeats} after a warm-up; groups of 8 views, the "
                  "default view plan")
        print(header, flush=True)
        t0 = time.perf_counter()
        inp = {v: inputs(v, size) for v in a.views}
        print(f"conditions rendered in {time.perf_counter() - t0:.1f} s", flush=True)
        measure(pipe, a, inp, device, rows, notes)
    except OutOfTime:
        done = {(r["compile"], r["mode"], r["views"]) for r in rows}
        left = [f"{m} x {v} (compile {c})" for c in {"both": ["off", "on"], "on": ["on"], "off": ["off"]}[a.compile]
                for v in a.views for m in a.modes if (c, m, v) not in done]
        notes.append(f"--budget {a.budget} s ran out; not measured: {', '.join(left)}")
        if not rows:
            raise SystemExit("\n".join(notes))
    finally:
        if a.budget:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, handler)
    bad = [f"{r['mode']} x {r['views']} ({r['compile']})" for r in rows if not r["finite"]]
    if bad:
        notes.append(f"non-finite outputs (random weights in {a.dtype}) in: {', '.join(bad)}")
    notes.append(f"total wall time {time.perf_counter() - t_start:.0f} s")
    text = "\n".join([header, "", table(rows, pipe), ""] + [f"- {n}" for n in notes])
    print("\n" + table(rows, pipe) + "\n\n" + "\n".join(f"- {n}" for n in notes), flush=True)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return rows


if __name__ == "__main__":
    main()
