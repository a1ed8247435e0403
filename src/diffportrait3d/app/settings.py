"""What a render is asked for, as one dataclass every front end fills: `dp3d render`, `dp3d demo`,
`dp3d serve` (the web page), batch rendering. The bounds below are the ones the CLI's argparse types
and `check_settings` both use, so a number the command line refuses is refused by the page too."""

from dataclasses import dataclass

from ..cameras.trajectories import PATHS
from ..faces.crop import CROP_MODES
from ..pipeline.modes import MODES
from ..pipeline.noise_mean import ALIASES, NOISE_MEANS
from ..preflight import check_range

DEFAULT_VIEWS = 16
MAX_VIEWS = 1024  # views per render: beyond this a turntable is a job for several runs
MAX_SEED = 2**63 - 1
MAX_STEPS = 1000
MAX_GUIDANCE = 100
MAX_FPS = 240
DTYPES = ("fp32", "fp16", "bf16")

# The choices a front end offers, one entry per field (the CLI flags and the page's radio buttons
# are built from this table).
CHOICES = {"crop": CROP_MODES, "dtype": DTYPES, "mode": tuple(MODES), "noise_mean": NOISE_MEANS}


@dataclass
class RenderSettings:
    # model (used when no loaded pipeline is passed to render())
    model: str = "mini"          # model folder, hub id, or "mini" (shipped)
    device: str = "auto"         # auto, cpu, cuda, cuda:1, ...
    dtype: str = "fp32"          # fp32 | fp16 | bf16
    # reference images
    crop: str = "auto"           # auto (aligned squares as given, other photos aligned) | align | none (faces/crop.py)
    reference_camera: str = "auto"  # auto (estimate, else a dataset.json's label, else frontal) | "YAW,PITCH" (reference_camera.py)
    # cameras: condition images rendered along a path, or read from a folder / video
    conditions: str = "render"   # render | a folder of images | a video
    path: str = "orbit"          # orbit | nod | spiral | bounce | FILE.json
    yaw: str = "-40:40"          # range A:B or one value, degrees
    pitch: str = "0"
    views: int | None = None     # None: DEFAULT_VIEWS on a path, every image of a folder, every frame of a video
    condition_seed: int | None = None  # identity the built-in renderer draws; None: the model folder's (mini: 7), else 0
    proxy: str = "auto"          # 3D-aware initial noise: auto | none | a folder of proxy images
    # sampling
    mode: str = "exact"          # a pipeline.modes.MODES key: exact (the release's DDIM) | fast | ...
    steps: int | None = None     # None: the mode's default (50 for exact, as the release)
    guidance: float = 3.0
    eta: float = 0.5
    seed: int = 0
    noise_mean: str | None = None  # None: the model's (mini: colour_pull) | keep (the release) | remove: the noise's
    #                                spatial mean no longer sets each view's colour | colour_pull (old name: reference):
    #                                remove, and the views keep the reference's mean colour (pipeline/noise_mean.py)
    group: int = 8               # views denoised together by the view modules
    # view plan beyond one group (pipeline/view_windows.py); all None: the pipeline's default
    group_mode: str | None = None  # shifted | windows | groups, +anchors, +camera[=C] | +progressive[=C] | +mixed[=C] | +freenoise
    overlap: int | None = None   # windows: views shared by neighbouring windows
    anchors: int | None = None   # anchor views rendered first and attended to by all
    loop: bool | None = None     # wrap windows around a closed path (None: detected)
    # video outputs
    fps: int = 8


def check_settings(s: RenderSettings) -> None:
    """Numbers in range and choices known, before any work; UserError names the option."""
    from ..errors import UserError
    from .reference_camera import parse_reference_camera

    for field, allowed in CHOICES.items():
        if getattr(s, field) not in allowed and not (field == "noise_mean" and (s.noise_mean is None or s.noise_mean in ALIASES)):
            raise UserError(f"--{field.replace('_', '-')} must be one of {', '.join(allowed)}, got {getattr(s, field)!r}")
    for arg, value, lo, hi, integer in (("--views", s.views, 1, MAX_VIEWS, True), ("--condition-seed", s.condition_seed, 0, MAX_SEED, True),
                                        ("--steps", s.steps, 1, MAX_STEPS, True), ("--guidance", s.guidance, 0, MAX_GUIDANCE, False),
                                        ("--eta", s.eta, 0, 1, False), ("--seed", s.seed, 0, MAX_SEED, True),
                                        ("--group", s.group, 1, None, True), ("--fps", s.fps, 1, MAX_FPS, True),
                                        ("--overlap", s.overlap, 0, None, True), ("--anchors", s.anchors, 0, None, True)):
        if value is not None:
            check_range(arg, value, lo, hi, integer)
    parse_reference_camera(s.reference_camera)
    if s.path not in PATHS and not s.path.lower().endswith(".json"):
        raise UserError(f"--path must be one of {', '.join(PATHS)} or a .json file, got {s.path!r}")
    view_plan(s)  # a bad --group-mode fails here, before any work


def view_plan(s: RenderSettings):
    """The settings' ViewPlan, or None for the pipeline's default (DEFAULT beyond one group, the release within one)."""
    from ..pipeline.view_windows import DEFAULT, ViewPlan

    extra = {k: getattr(s, k) for k in ("overlap", "anchors", "loop") if getattr(s, k) is not None}
    if s.group_mode is None and not extra:
        return None
    return ViewPlan.parse(s.group_mode or DEFAULT, group_size=s.group, **extra)
