"""What a render is asked for, as one dataclass every front end fills: `dp3d render`, `dp3d demo`,
`dp3d serve` (the web page), batch rendering. The bounds below are the ones the CLI's argparse types
and `check_settings` both use, so a number the command line refuses is refused by the page too."""

from dataclasses import dataclass

from ..conditions.crop import CROP_MODES
from ..conditions.trajectories import PATHS
from ..preflight import check_range

DEFAULT_VIEWS = 16
MAX_VIEWS = 1024  # views per render: beyond this a turntable is a job for several runs
MAX_SEED = 2**63 - 1
MAX_STEPS = 1000
MAX_GUIDANCE = 100
MAX_FPS = 240
DTYPES = ("fp32", "fp16", "bf16")

# The choices a front end offers, one entry per field. Issue 14 adds `"mode": (...)` here (and
# nothing else: the CLI flag and the page's radio buttons are built from this table); issue 13
# extends CROP_MODES with its alignment.
CHOICES = {"crop": CROP_MODES, "dtype": DTYPES}


@dataclass
class RenderSettings:
    # model (used when no loaded pipeline is passed to render())
    model: str = "mini"          # model folder, hub id, or "mini" (shipped)
    device: str = "auto"         # auto, cpu, cuda, cuda:1, ...
    dtype: str = "fp32"          # fp32 | fp16 | bf16
    # reference images
    crop: str = "none"           # none (as given) | auto (find the face, frame it as in training)
    # cameras: condition images rendered along a path, or read from a folder / video
    conditions: str = "render"   # render | a folder of images | a video
    path: str = "orbit"          # orbit | nod | spiral | FILE.json
    yaw: str = "-40:40"          # range A:B or one value, degrees
    pitch: str = "0"
    views: int | None = None     # None: DEFAULT_VIEWS on a path, every image of a folder, every frame of a video
    condition_seed: int = 0      # identity the built-in renderer draws
    proxy: str = "auto"          # 3D-aware initial noise: auto | none | a folder of proxy images
    # sampling
    steps: int = 50
    guidance: float = 3.0
    eta: float = 0.5
    seed: int = 0
    group: int = 8               # views denoised together by the view modules
    mode: str | None = None      # None: the pipeline's default; issue 14: exact | fast
    # video outputs
    fps: int = 8


def check_settings(s: RenderSettings) -> None:
    """Numbers in range and choices known, before any work; UserError names the option."""
    from ..errors import UserError

    for field, allowed in CHOICES.items():
        if getattr(s, field) not in allowed:
            raise UserError(f"--{field} must be one of {', '.join(allowed)}, got {getattr(s, field)!r}")
    for arg, value, lo, hi, integer in (("--views", s.views, 1, MAX_VIEWS, True), ("--condition-seed", s.condition_seed, 0, MAX_SEED, True),
                                        ("--steps", s.steps, 1, MAX_STEPS, True), ("--guidance", s.guidance, 0, MAX_GUIDANCE, False),
                                        ("--eta", s.eta, 0, 1, False), ("--seed", s.seed, 0, MAX_SEED, True),
                                        ("--group", s.group, 1, None, True), ("--fps", s.fps, 1, MAX_FPS, True)):
        if value is not None:
            check_range(arg, value, lo, hi, integer)
    if s.path not in PATHS and not s.path.lower().endswith(".json"):
        raise UserError(f"--path must be one of {', '.join(PATHS)} or a .json file, got {s.path!r}")
