"""Held-out subjects of the miniature world and the orbit measures used to judge a model on them
(tests/test_miniature.py, benchmarks/bench_miniature_quality.py).

A subject is drawn exactly as `dp3d synth --frames 1 --views V --seed SEED` draws subject i
(identity, neutral expression, light, V random cameras) and rendered the same way, in memory.
The shipped model trained on seed 0; any other seed gives identities it never saw.
"""

import numpy as np
import torch

from ..cameras import camera_labels
from ..conditions.sources import model_carrier_style, model_condition_seed, render_conditions
from ..head import Expression, Identity, build_scene, render_scene
from ..data.synth import SynthConfig, subject_plan
from ..media import image_to_tensor

BORDER = 4  # pixels of the frame whose mean colour stands for the background


class HeldoutSubject:
    def __init__(self, seed: int, i: int, views: int = 6, res: int = 64):
        plan = subject_plan(SynthConfig(frames=1, views=views, seed=seed, res=res), i)
        frame = plan["frames"][0]
        self.identity_seed, self.res = plan["identity_seed"], res
        self.scene = build_scene(Identity.sample(self.identity_seed), Expression(**frame["expression"]))
        self.light = tuple(frame["light"])
        self.angles = np.array(frame["cameras"])  # (views, 2) yaw, pitch in degrees; [0] is the reference
        self.labels = camera_labels(self.angles[:, 0], self.angles[:, 1])
        self._renders = {}  # render-and-compare asks for the same grid of cameras for every view it scores
        self.images = torch.stack([self.render(y, p) for y, p in self.angles])  # (views, 3, res, res) in [-1, 1]

    def render(self, yaw: float, pitch: float = 0.0, scene=None) -> torch.Tensor:
        """This subject (or `scene`, in this subject's light) at a camera, (3, res, res) in [-1, 1]; the
        subject's own renders are kept (a copy is returned)."""
        key = (float(yaw), float(pitch))
        if scene is None and key in self._renders:
            return self._renders[key].clone()
        label = camera_labels([yaw], [pitch])[0]
        image = image_to_tensor(render_scene(scene or self.scene, label, self.res, light=self.light).pil())
        if scene is None:
            self._renders[key] = image.clone()
        return image


def generate_views(pipe, subject: HeldoutSubject, angles, steps: int, condition_seed: int | None = None, proxy="auto",
                   control: float = 1.0, modules: bool = True, seed: int = 0, views=None, noise_mean: str | None = None,
                   conditions=None, mode: str = "exact") -> torch.Tensor:
    """Views of `subject` from its reference (camera 0) at `angles` (N, 2) yaw/pitch, (N, 3, H, W) in
    [-1, 1]; `control=0` turns the view ControlNet off, `modules=False` the view modules; `views`: the
    pipeline's view plan (None: its default); `noise_mean`: the pipeline's (None: the model's default);
    `condition_seed`: the camera carrier (None: the model's, as `dp3d render` draws it, in the model's carrier style); `conditions`: the condition
    images themselves instead (one per angle); `mode`: the sampling mode (steps None: its default)."""
    labels = camera_labels(angles[:, 0], angles[:, 1])
    if not modules:
        pipe.view_modules.detach()
    try:
        if conditions is None:
            conditions = render_conditions(labels, subject.res, model_condition_seed(pipe) if condition_seed is None else condition_seed,
                                           model_carrier_style(pipe))
        out = pipe(subject.images[:1], conditions, num_inference_steps=steps, mode=mode,
                   proxy_images=proxy, condition_labels=labels, reference_label=subject.labels[0], control_scale=control,
                   generator=torch.Generator().manual_seed(seed), views=views, noise_mean=noise_mean, output_type="pt").images
    finally:
        if not modules:
            pipe.install_processors()
    return out * 2 - 1


def border_colour(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] -> (N, 3) mean colour of the outer frame, on a 0-255 scale."""
    m = torch.ones(images.shape[-2:], dtype=torch.bool)
    m[BORDER:-BORDER, BORDER:-BORDER] = False
    return (images[..., m].mean(-1) + 1) * 127.5


def view_change(images: torch.Tensor) -> float:
    """Mean absolute change between neighbouring views of a (N, 3, H, W) sequence."""
    return (images[1:] - images[:-1]).abs().mean().item()


def centre_colour(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] -> (N, 3) mean colour of the central quarter (face and hair), 0-255."""
    h, w = images.shape[-2:]
    return (images[..., h // 4 : h - h // 4, w // 4 : w - w // 4].mean((-1, -2)) + 1) * 127.5


def draws_at(pipe, subject: HeldoutSubject, camera, steps: int, draws: int = 4, seed: int = 0,
             truth_of: HeldoutSubject | None = None, **kw) -> dict:
    """`draws` views of `subject` at one camera (yaw, pitch) from its reference, in one group with
    independent noise (the release's plan), and how they compare with the truth at that camera:
    SSIM per draw, spread (std across draws per pixel, mean, 0-255), colour error of the central
    quarter and of the border (|mean colour - truth's|, mean over RGB and draws, 0-255).
    At the reference's own camera this is reconstruction: the reference must come back. `truth_of`:
    compare with another subject's truth (default: `subject`'s)."""
    from .ssim import ssim

    truth = (truth_of or subject).render(*camera)[None]
    gen = generate_views(pipe, subject, np.repeat(np.asarray(camera, float)[None], draws, 0), steps, seed=seed,
                         views="groups", **kw)
    return {"ssim": ssim(gen, truth.expand_as(gen)).tolist(),
            "spread": ((gen + 1) * 127.5).std(0).mean().item(),
            "face_error": (centre_colour(gen) - centre_colour(truth)).abs().mean().item(),
            "background_error": (border_colour(gen) - border_colour(truth)).abs().mean().item(),
            "images": gen}
