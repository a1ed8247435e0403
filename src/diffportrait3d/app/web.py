"""`dp3d serve`: the render flow (app/render.py) as a Gradio page, for one model loaded at start.

Renders run one at a time through Gradio's queue (the pipeline's attention processors hold per-call
state, so two renders must not share it); condition previews run beside them. A bad upload or
setting becomes a message in the page (UserError), never a server error. With "Lift to a 3D head"
ticked, the render's views are also fitted with 3D Gaussians (app/lift.py, the flow of `dp3d render
--lift`): the mesh is shown in a 3D viewer and head.ply + head.glb are offered as downloads, from the
same result folder as the other files (so pruned with them). Besides the page, the named endpoint
`/render` takes (image file, yaw "A:B", pitch "A:B", views, steps, seed) and returns the turntable
video, for `gradio_client`.
"""

import atexit
import itertools
import logging
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from ..cameras.trajectories import PATHS
from ..errors import UserError
from ..pipeline.modes import MODES
from .lift import LiftSettings
from .render import RenderResult, load_references, make_conditions, mode_steps, render
from .render import condition_seed as condition_seed_of
from .samples import write_samples
from .settings import CHOICES, MAX_GUIDANCE, RenderSettings

logger = logging.getLogger(__name__)

MAX_UPLOAD = "20mb"        # Gradio refuses bigger uploads itself; open_rgb refuses more pixels than PIL's bomb limit
MAX_WEB_VIEWS = 64         # one request's views, so a single visitor cannot occupy the server for hours
MAX_WEB_STEPS = 200
KEEP_RESULTS = 32          # result folders kept on disk (Gradio serves copies from its own cache)
RESULT_PREFIX = "result-"  # their names: result-DATE-TIME-COUNT-RANDOM
PREVIEW_SIZE = 128         # condition previews are drawn at most this large
WEB_FILES = ("turntable.mp4", "contact_sheet.png", "views.zip")
WEB_CHOICES = {"crop": CHOICES["crop"], "mode": ("exact", "fast")}  # radio buttons: field -> offered choices


def web_choices(pipe) -> dict:
    """The page's radio buttons for one loaded model: `turbo` too when it has a distilled student (pipeline/turbo.py)."""
    turbo = ("turbo",) if getattr(pipe, "turbo_unet", None) is not None else ()
    return {**WEB_CHOICES, "mode": WEB_CHOICES["mode"] + turbo}


def _gradio():
    try:
        import gradio as gr
    except ImportError:
        raise UserError("dp3d serve needs Gradio: pip install 'diffportrait3d[serve]'") from None
    return gr


class WebRenderer:
    """The page's work, on one loaded pipeline; every method raises only UserError for bad input.
    `lift`: the 3D step when a request asks for it (default: `dp3d lift`'s defaults on the model's device)."""

    def __init__(self, pipe, base: RenderSettings, workdir: Path, lift: LiftSettings | None = None):
        self.pipe, self.base, self.workdir = pipe, base, Path(workdir)
        self.lift = lift or LiftSettings()
        self._count = itertools.count()

    def settings(self, **changes) -> RenderSettings:
        s = replace(self.base, **changes)
        steps = s.steps or (MODES[s.mode].steps if s.mode in MODES else 0)  # an unknown mode: check_settings says so
        for flag, value, limit in (("--views", s.views, MAX_WEB_VIEWS), ("--steps", steps, MAX_WEB_STEPS)):
            if value is not None and value > limit:  # the flag: page_message names the page's field
                raise UserError(f"{flag} {value}: this page renders at most {limit} per request; use `dp3d render` for more")
        return s

    def reference(self, upload, crop: str, camera: str = "auto"):
        """The uploaded image as the model sees it (cropped, at the model's size) and the line saying how it was
        cropped and which camera it is given (`camera`: the page's reference camera, as --reference-camera)."""
        if not upload:
            raise UserError("upload a portrait image (or pick a sample) first")
        ref = load_references([upload], crop, names=["the portrait"], camera=camera)[0]
        size = self.pipe.image_size
        return ref.image.resize((size, size)), page_message(ref.note)

    def preview(self, s: RenderSettings):
        conds, _ = make_conditions(s, min(self.pipe.image_size, PREVIEW_SIZE), self.pipe)
        return conds

    def render(self, upload, s: RenderSettings, progress=None, lift: bool = False) -> RenderResult:
        """Render into a new result folder: WEB_FILES, and with `lift` head.ply + head.glb (result.files)."""
        if not upload:
            raise UserError("upload a portrait image (or pick a sample) first")
        # names sort in request order, also within one second (_prune keeps the last ones)
        out = self.workdir / f"{RESULT_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{next(self._count):06d}-{uuid.uuid4().hex[:8]}"
        try:
            return render(s, [upload], out, WEB_FILES, pipe=self.pipe, progress=progress, lift=self.lift if lift else None)
        finally:
            self._prune()

    def page(self, upload, s: RenderSettings, lift: bool = False, progress=None) -> dict:
        """What the page shows for one request: {video, sheet, zip, model (the GLB or None), head_files
        ([PLY, GLB] or None), status}; a UserError becomes the status, in the page's words."""
        t0 = time.perf_counter()
        try:
            result = self.render(upload, s, progress, lift)
        except UserError as e:
            return dict(video=None, sheet=None, zip=None, model=None, head_files=None, status=f"**Error:** {page_message(e)}")
        files = result.files
        lifted = " and lifted them to 3D" if result.lift is not None else ""
        status = (f"Rendered {s.views} views{lifted} in {time.perf_counter() - t0:.1f} s ({s.mode} mode, "
                  f"{mode_steps(s, self.pipe)} steps, seed {s.seed}).")
        model = head_files = None
        if result.lift is not None:
            mesh, fit = result.lift.mesh, result.lift.fit
            model, head_files = str(files["head.glb"]), [str(files["head.ply"]), str(files["head.glb"])]
            status += (f" 3D head: {len(fit.gaussians)} Gaussians fitted in {fit.seconds:.0f} s (PSNR "
                       f"{result.lift.fitted_psnr:.1f} dB on the views), a mesh of {len(mesh.vertices)} vertices.")
        return dict(video=str(files["turntable.mp4"]), sheet=str(files["contact_sheet.png"]), zip=str(files["views.zip"]),
                    model=model, head_files=head_files, status=status)

    def _prune(self):
        # result folders only: the sample references live in the same workdir
        for old in sorted(p for p in self.workdir.iterdir() if p.is_dir() and p.name.startswith(RESULT_PREFIX))[:-KEEP_RESULTS]:
            shutil.rmtree(old, ignore_errors=True)


# the app layer speaks the CLI's flags; the page and its API name their own fields
_PAGE_FIELDS = {"--yaw": "yaw", "--pitch": "pitch", "--views": "views", "--steps": "steps", "--seed": "seed",
                "--guidance": "guidance", "--crop": "crop", "--mode": "mode", "--path": "camera path",
                "--condition-seed": "condition seed", "--lift": "3D head", "--reference-camera": "reference camera"}


def page_message(error: Exception) -> str:
    """A user error in the page's words: its field names instead of command-line flags."""
    text = str(error)
    for flag in sorted(_PAGE_FIELDS, key=len, reverse=True):
        text = re.sub(re.escape(flag) + r"(?![\w-])", _PAGE_FIELDS[flag], text)
    return text


def build_app(pipe, base: RenderSettings, workdir: Path, lift: LiftSettings | None = None):
    """The Gradio Blocks page around one loaded pipeline."""
    gr = _gradio()
    web = WebRenderer(pipe, base, workdir, lift)
    samples = write_samples(Path(workdir) / "samples", size=pipe.image_size)

    def as_settings(crop, path, yaw0, yaw1, pitch0, pitch1, views, condition_seed, mode=None, steps=None, guidance=None, seed=None,
                    reference_camera=None):
        extra = {} if mode is None else dict(mode=mode, steps=int(steps) or None, guidance=float(guidance), seed=int(seed),
                                             reference_camera=str(reference_camera or "auto").strip() or "auto")
        return web.settings(crop=crop, path=path, yaw=f"{yaw0:g}:{yaw1:g}", pitch=f"{pitch0:g}:{pitch1:g}", views=int(views),
                            condition_seed=int(condition_seed), **extra)

    def show_reference(upload, crop, camera):  # -> reference image, what was done to it, status
        if not upload:
            return None, "", ""
        try:
            return *web.reference(upload, crop, str(camera or "auto").strip() or "auto"), ""
        except UserError as e:
            return None, "", f"**Error:** {page_message(e)}"

    def show_preview(*camera):
        try:
            return web.preview(as_settings(base.crop, *camera)), ""
        except UserError as e:
            return None, f"**Error:** {page_message(e)}"

    page_outputs = ("video", "sheet", "zip", "model", "head_files", "status")

    def page_render(upload, crop, reference_camera, mode, path, yaw0, yaw1, pitch0, pitch1, views, condition_seed, steps, guidance,
                    seed, lift, progress=gr.Progress()):
        try:
            s = as_settings(crop, path, yaw0, yaw1, pitch0, pitch1, views, condition_seed, mode, steps, guidance, seed,
                            reference_camera)
        except UserError as e:
            return None, None, None, None, None, f"**Error:** {page_message(e)}"
        shown = web.page(upload, s, bool(lift), lambda done, total, what: progress((done, total), desc=what))
        return tuple(shown[k] for k in page_outputs)

    def api_render(image, yaw, pitch, views, steps, seed, progress=gr.Progress()):
        try:
            s = web.settings(yaw=str(yaw), pitch=str(pitch), views=int(views), steps=int(steps), seed=int(seed))
            return str(web.render(image, s, lambda done, total, what: progress((done, total), desc=what)).files["turntable.mp4"])
        except (UserError, ValueError, TypeError) as e:
            # one log line per user error, not Gradio's traceback for every gr.Error
            logger.warning("render request refused: %s", page_message(e))
            raise gr.Error(page_message(e), print_exception=False) from None

    with gr.Blocks(title="DiffPortrait3D", analytics_enabled=False, delete_cache=(600, 3600)) as app:
        gr.Markdown("## DiffPortrait3D: novel views of a portrait\nUpload a portrait (or pick a sample), choose the cameras, "
                    "press **Render**.")
        if base.model == "mini":
            gr.Markdown("*The shipped miniature model knows only the procedural heads it was trained on (the samples); "
                        "on a photo expect a procedural head, not your subject.*")
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Portrait (image file)", file_types=["image"], type="filepath", elem_id="upload")
                gr.Examples([[str(p)] for p in samples], inputs=[upload], label="Sample references")
                choice = {f: gr.Radio(list(offered), value=getattr(base, f) if getattr(base, f) in offered else offered[0], label=f)
                          for f, offered in web_choices(pipe).items()}
                reference_camera = gr.Textbox(base.reference_camera, label="Reference camera: auto, or YAW,PITCH in degrees "
                                              "(auto: estimated for a photo it aligns, else frontal)", elem_id="reference-camera")
                reference = gr.Image(label="Reference as the model sees it", interactive=False, height=160)
                crop_note = gr.Markdown(elem_id="crop-note")
                with gr.Group():
                    path = gr.Radio(list(PATHS), value=base.path if base.path in PATHS else "orbit", label="Camera path")
                    yaw0 = gr.Slider(-90, 90, value=-40, step=1, label="Yaw from (degrees)")
                    yaw1 = gr.Slider(-90, 90, value=40, step=1, label="Yaw to")
                    pitch0 = gr.Slider(-45, 45, value=0, step=1, label="Pitch from")
                    pitch1 = gr.Slider(-45, 45, value=0, step=1, label="Pitch to")
                    views = gr.Slider(1, MAX_WEB_VIEWS, value=base.views or 8, step=1, label="Views")
                    condition_seed = gr.Number(condition_seed_of(base, pipe), precision=0, minimum=0,
                                               label="Condition seed (camera-carrier identity; default: the model's)")
                preview = gr.Gallery(label="Condition images (they carry the cameras)", columns=8, height=160, elem_id="preview")
                with gr.Group():
                    steps = gr.Slider(0, MAX_WEB_STEPS, value=base.steps or 0, step=1, label="Steps (0: the mode's default)")
                    guidance = gr.Slider(0, min(MAX_GUIDANCE, 20), value=base.guidance, step=0.5, label="Guidance")
                    seed = gr.Number(base.seed, precision=0, minimum=0, label="Seed")
                lift_box = gr.Checkbox(False, label="Lift to a 3D head: fit 3D Gaussians and a mesh to the views (takes longer; "
                                                    "needs two or more views)", elem_id="lift")
                button = gr.Button("Render", variant="primary", elem_id="render")
            with gr.Column():
                status = gr.Markdown(elem_id="status")
                video = gr.Video(label="Turntable", elem_id="turntable", autoplay=True, loop=True, height=320)
                sheet = gr.Image(label="Contact sheet: reference | conditions | generated", elem_id="sheet")
                archive = gr.File(label="All views (PNG, zip)", elem_id="zip")
                model3d = gr.Model3D(label="3D head (mesh; drag to turn)", elem_id="model3d", height=320)
                head_files = gr.File(label="3D head: Gaussians (.ply, 3D Gaussian Splatting) and mesh (.glb)",
                                     file_count="multiple", elem_id="head-files")
        camera = [path, yaw0, yaw1, pitch0, pitch1, views, condition_seed]
        shown = ([upload, choice["crop"], reference_camera], [reference, crop_note, status])
        for event in (upload.change, choice["crop"].change, reference_camera.submit, reference_camera.blur):  # not every keystroke
            event(show_reference, *shown, concurrency_limit=4, api_visibility="private")
        for c in camera:
            c.change(show_preview, camera, [preview, status], concurrency_limit=4, api_visibility="private")
        app.load(show_preview, camera, [preview, status], api_visibility="private")
        button.click(page_render, [upload, choice["crop"], reference_camera, choice["mode"], *camera, steps, guidance, seed, lift_box],
                     [video, sheet, archive, model3d, head_files, status],
                     api_visibility="private")
        # the API endpoint: components kept out of sight, fed only by gradio_client
        with gr.Row(visible=False):
            api_in = [gr.File(type="filepath"), gr.Textbox(), gr.Textbox(), gr.Number(precision=0), gr.Number(precision=0),
                      gr.Number(precision=0)]
            api_out = gr.Video()
            gr.Button().click(api_render, api_in, api_out, api_name="render")
    return app


def serve(settings: RenderSettings, host: str = "127.0.0.1", port: int = 7860, block: bool = True,
          lift: LiftSettings | None = None):
    """Load the model once, then serve the page until interrupted (block=False: return the running app)."""
    from .render import load_model

    gr = _gradio()
    pipe = load_model(settings)
    pipe.set_progress_bar_config(disable=True)
    workdir = Path(tempfile.mkdtemp(prefix="dp3d-serve-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    app = build_app(pipe, settings, workdir, lift)
    app.queue(default_concurrency_limit=1, max_size=32)
    if host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("serving on %s: anyone who can reach this machine can use the page (no login)", host)
    # system fonts: the default theme would ask Google Fonts, which an offline machine cannot reach
    app.launch(server_name=host, server_port=port, max_file_size=MAX_UPLOAD, allowed_paths=[str(workdir)],
               prevent_thread_lock=not block, share=False, inbrowser=False, theme=gr.themes.Default(font="sans-serif"))
    return app
