"""references + camera path + settings -> views + files: the one flow behind `dp3d render`,
`dp3d demo`, `dp3d serve` and batch rendering.

    >>> from diffportrait3d.app import RenderSettings, render
    >>> result = render(RenderSettings(model="mini", views=8), ["me.png"], "out/")   # out/view_000.png ..., contact_sheet.png
    >>> result.views            # PIL images, one per camera
    >>> render(settings, ["me.png"], "out/", lift=LiftSettings())   # + out/head.ply and out/head.glb (app/lift.py)

Front ends that render many times load the model once (`load_model`) and pass it as `pipe=`.
"""

import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..errors import UserError
from .outputs import check_outputs, write_outputs
from .settings import DEFAULT_VIEWS, RenderSettings, check_settings

logger = logging.getLogger(__name__)

# progress(done, total, what): called at each stage and after each denoising step
Progress = Callable[[int, int, str], None]


@dataclass
class RenderResult:
    references: list[Image.Image]       # as the model saw them (after cropping)
    conditions: list[Image.Image]       # one per view: the images that carry the cameras
    labels: np.ndarray | None           # (N, 25) EG3D cameras of the views, when known
    views: list[Image.Image]            # the generated views
    files: dict[str, Path] = field(default_factory=dict)  # what was written, by name
    lift: object = None                 # app.lift.LiftResult when the views were lifted to 3D


def load_model(settings: RenderSettings):
    from ..pipeline.loading import load_pipeline

    return load_pipeline(settings.model, settings.device, settings.dtype)


def check(settings: RenderSettings, output=None, files=None, lift=None, model: bool = True) -> None:
    """Everything that can be checked before a model loads: numbers, choices, sources, outputs
    (with `lift`, a LiftSettings: the 3D step's views, cameras and files too), and with `model` what the folder
    settings.model names says about the mode (turbo: a student, its steps; mode_steps)."""
    check_settings(settings)
    check_sources(settings)
    if model:
        mode_steps(settings)
    if output is not None:
        check_outputs(output, files)
    if lift is not None:
        from .lift import check_render_lift

        check_render_lift(settings, output)


def mode_steps(s: RenderSettings, pipe=None) -> int | None:
    """The denoising steps a render of `s` takes: --steps, else the mode's default (turbo: the model folder's).
    Turbo needs a distilled folder and at most its teacher's steps, else a one-line UserError: from `pipe`, or
    without one from the model_index.json of the folder s.model names, before it loads (None for a hub id)."""
    from ..pipeline.model_folder import read_model_index
    from ..pipeline.modes import MODES
    from ..pipeline.turbo import check_turbo_steps, require_student

    if not MODES[s.mode].student:
        return s.steps or MODES[s.mode].steps
    if pipe is None:
        index = read_model_index(s.model)
        if not index:
            return None
        turbo = require_student(index)
    else:
        turbo = require_student(pipe)
    return check_turbo_steps(turbo, s.steps or turbo.steps)


def check_sources(s: RenderSettings) -> None:
    """Condition and proxy sources exist, and --views fits them (instead of being capped silently)."""
    from ..media import VIDEO_SUFFIXES, read_video_frames

    for arg, value, keywords in (("--conditions", s.conditions, ("render",)), ("--proxy", s.proxy, ("auto", "none"))):
        if value not in keywords and not Path(value).exists():
            raise UserError(f"{arg} {value}: not found; pass {' or '.join(keywords)}, a folder of images or a video")
    source = Path(s.conditions)
    check_proxy_folder(s, source)
    if s.views is None or s.conditions == "render":
        return
    if source.is_dir():
        raise UserError(f"--views {s.views}: every image of the condition folder {source} is used (one view each); "
                        "drop --views, or pass a folder holding the views you want")
    if source.suffix.lower() in VIDEO_SUFFIXES and s.views > (n := len(read_video_frames(source))):
        raise UserError(f"--views {s.views}: the condition video {source} has only {n} frames; pass --views {n} or fewer")


def check_proxy_folder(s: RenderSettings, conditions: Path) -> None:
    """A --proxy folder holds one image per view (known here for rendered cameras and condition folders
    or images; a video's count is checked by the pipeline)."""
    from ..conditions.sources import posed_view_count
    from ..media import IMAGE_SUFFIXES, list_images

    if s.proxy in ("auto", "none") or not Path(s.proxy).is_dir():
        return
    try:
        n = len(list_images(s.proxy))
    except UserError as e:
        raise UserError(f"--proxy {s.proxy}: {e}") from None
    if s.conditions != "render" and conditions.is_file() and conditions.suffix.lower() not in IMAGE_SUFFIXES:
        return
    views, _ = posed_view_count(s.conditions, s.views, DEFAULT_VIEWS)  # the count load_conditions will return
    if n != views:
        raise UserError(f"--proxy {s.proxy}: {n} proxy images for {views} views; give one proxy image per view "
                        "(in file-name order)")


def load_references(references, crop: str = "auto", names: list[str] | None = None, camera: str = "auto") -> list:
    """Paths or PIL images -> faces.crop.AlignedPortrait (.image RGB, .label its EG3D camera as `camera`, a
    --reference-camera value, gives it: app/reference_camera.py), cropped as `crop` says; .note says both. A
    UserError names a bad one (by its path, or by `names` when given: the web page's uploads live under
    temporary paths the user never chose)."""
    from ..faces.crop import crop_face
    from ..media import open_rgb, to_rgb
    from .reference_camera import parse_reference_camera, place_references

    if isinstance(references, (str, Path, Image.Image)):
        references = [references]
    if not references:
        raise UserError("no reference image given")
    parse_reference_camera(camera)  # a bad value fails before any image is read
    if names is None:
        names = ["the reference image" if isinstance(r, Image.Image) else str(r) for r in references]
    aligned = [crop_face(to_rgb(r) if isinstance(r, Image.Image) else open_rgb(r), crop, name) for r, name in zip(references, names)]
    return place_references(aligned, references, camera)


def condition_seed(s: RenderSettings, pipe) -> int:
    """The carrier identity: --condition-seed when given, else the model folder's (conditions.sources)."""
    from ..conditions.sources import model_condition_seed

    return model_condition_seed(pipe) if s.condition_seed is None else s.condition_seed


def make_conditions(s: RenderSettings, size: int, pipe=None):
    """Condition images (size x size) and their EG3D labels (None when unknown) for the settings' cameras; the
    carrier identity is `pipe`'s model's unless s.condition_seed names one (no pipe: the renderer's default), drawn
    in the model's carrier style."""
    from ..conditions.sources import load_conditions, model_carrier_style

    seed = s.condition_seed if pipe is None else condition_seed(s, pipe)
    style = "colour" if pipe is None else model_carrier_style(pipe)
    if style != "colour" and s.conditions not in (None, "render"):
        logger.warning("this model's ControlNet was trained on %s carriers; your condition images (%s) are read as given "
                       "(`dp3d conditions --model MODEL` draws %s ones)", style, s.conditions, style)
    return load_conditions(s.conditions, s.views or DEFAULT_VIEWS, size, yaw=s.yaw, pitch=s.pitch, path=s.path,
                           condition_seed=seed, carrier_style=style)


def sample(pipe, s: RenderSettings, references, conditions, labels=None, progress: Progress | None = None,
           reference_label=None, seed: int | None = None) -> list[Image.Image]:
    """The pipeline call with the settings' sampler options; `seed` overrides s.seed (evaluation draws one per pair)."""
    import torch

    from ..conditions.sources import load_conditions
    from .settings import view_plan

    proxies = s.proxy
    if proxies not in ("auto", "none"):
        proxies, _ = load_conditions(proxies, len(conditions), pipe.image_size)
    on_step = None
    if progress is not None:
        done = itertools.count(1)
        total = mode_steps(s, pipe)
        on_step = lambda info: progress(next(done), total, "denoising")  # noqa: E731
    gen = torch.Generator(device="cpu").manual_seed(s.seed if seed is None else seed)
    return pipe(references, conditions, num_inference_steps=s.steps, guidance_scale=s.guidance, eta=s.eta,
                proxy_images=None if proxies == "none" else proxies, condition_labels=labels, reference_label=reference_label,
                generator=gen, group_size=s.group, callback=on_step, mode=s.mode, views=view_plan(s),
                noise_mean=s.noise_mean).images


def render(settings: RenderSettings, references, output=None, files=None, *, pipe=None, progress: Progress | None = None,
           truth=None, lift=None, say=None) -> RenderResult:
    """Render one view per camera of `settings` from `references` (paths or PIL images of one person).

    output: None (nothing written), OUT.mp4 / OUT.gif (that video), or a folder receiving `files`
    (names from outputs.FILES; default view PNGs + contact_sheet.png). Everything is checked before
    the model loads. pipe: a loaded pipeline (settings.model/device/dtype are then not used).
    truth: ground-truth views, shown as a last contact-sheet row (the demo's synthetic head).
    lift: an app.lift.LiftSettings: after the files, fit 3D Gaussians to the views and write head.ply +
    head.glb into the folder (OUT.ply + OUT.glb beside a video); needs an output and known cameras.
    say: receives one line per reference saying how it was cropped (faces/crop.py), before sampling.
    """
    report = progress or (lambda done, total, what: None)
    check(settings, output, files, lift, model=pipe is None)  # a pipeline passed in: settings.model is not it
    report(0, 1, "reading the reference")
    aligned = load_references(references, settings.crop, camera=settings.reference_camera)
    refs = [a.image for a in aligned]
    if pipe is None:
        report(0, 1, "loading the model")
        pipe = load_model(settings)
    mode_steps(settings, pipe)  # what check() could not read (a hub id, a pipeline passed in): before any work or note
    report(0, 1, "drawing the cameras")
    conds, labels = make_conditions(settings, pipe.image_size, pipe)
    for a in aligned if say else ():  # once nothing else can fail on bad input: an error stays the only line
        say(a.note)
    # one camera per reference (reference_camera.py): the position bias and the colour pull read them all
    views = sample(pipe, settings, refs, conds, labels, progress, reference_label=np.stack([a.label for a in aligned]))
    result = RenderResult(refs, conds, labels, views)
    if output is not None:
        report(0, 1, "writing files")
        result.files = write_outputs(result, output, files, settings.fps, truth)
    if lift is not None:
        from .lift import lift_render

        report(0, 1, "fitting the 3D head")
        result.lift = lift_render(result, output, lift, seed=settings.seed, device=str(pipe.device), progress=progress is None)
        result.files.update({p.name: p for p in result.lift.files.values()})
    return result
