"""Surface colour: per-part albedo with a few procedural details, Lambert + ambient light, a backdrop.

Colours are specified in sRGB and shaded in linear light (gamma 2.2), then converted back.
The "clay" style draws shape only: one albedo everywhere, one light fixed in the world, a flat backdrop, so that
two identities differ in a clay render by their geometry alone (a camera carrier whose colours cannot be misread).
"""

import numpy as np
import torch
import torch.nn.functional as F

from .identity import Identity
from .scene import Scene
from .sdf import PART, PARTS


def _normals_and_parts(scene: Scene, p: torch.Tensor):
    """Unit normals (the field's gradient, by autograd: exact, one pass) and part/primitive ids."""
    with torch.enable_grad():
        q = p.detach().requires_grad_(True)
        d, part, prim = scene.field.distance(q, with_part=True)
        (g,) = torch.autograd.grad(d.sum(), q)
    return F.normalize(g, dim=-1), part, prim


STYLES = ("colour", "clay")
CLAY_ALBEDO = (0.72, 0.72, 0.72)  # sRGB
CLAY_LIGHT = (0.5, 0.5)  # azimuth, elevation (radians): from the front right, above
CLAY_AMBIENT = 0.35
CLAY_BACKDROP = (0.18, 0.18, 0.18)  # sRGB


def shade(scene: Scene, p, view_dir, light=None, style: str = "colour"):
    """Colour (linear RGB) and part id of surface points."""
    idt = scene.identity
    n, part, prim = _normals_and_parts(scene, p)
    if style == "clay":
        albedo, light, ambient = _lin(CLAY_ALBEDO).expand(p.shape[0], 3), CLAY_LIGHT, CLAY_AMBIENT
    else:
        albedo, ambient = _albedo(scene, p, part, prim), idt.ambient
    az, el = light if light is not None else (idt.light_azimuth, idt.light_elevation)
    l = torch.tensor([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)], dtype=torch.float32)
    # ambient occlusion from one probe along the normal darkens creases (eye openings, ear roots)
    h = 0.02
    ao = 0.4 + 0.6 * (scene.field.distance(p + h * n) / h).clamp(0, 1)
    diffuse = (n @ l).clamp_min(0)
    fill = 0.5 + 0.5 * n[:, 1]  # sky-ish ambient: brighter on upward-facing surfaces
    light_amt = ambient * (0.6 + 0.4 * fill) * ao + (1 - ambient) * diffuse * ao.sqrt()
    col = albedo * light_amt[:, None]
    shiny = (part == PART["eye"]) | (part == PART["lips"]) | (part == PART["glasses"]) | (part == PART["teeth"])
    half = F.normalize(l - view_dir, dim=-1)
    spec = (n * half).sum(-1).clamp_min(0) ** 40 * (0.06 if style == "clay" else torch.where(shiny, 0.5, 0.06))
    return (col + spec[:, None]).clamp(0, 1), part


def _lin(c) -> torch.Tensor:
    return torch.tensor(c, dtype=torch.float32) ** 2.2


def to_srgb(x: torch.Tensor) -> torch.Tensor:
    return x.clamp_min(0) ** (1 / 2.2)


def _albedo(scene: Scene, p, part, prim) -> torch.Tensor:
    idt = scene.identity
    skin, hair = _lin(idt.skin), _lin(idt.hair_colour)
    table = {"skin": skin, "nose": skin, "ear": skin, "eye": _lin((0.92, 0.9, 0.86)), "brow": hair * 0.7,
             "lips": _lin(idt.lip_tint), "mouth": _lin((0.28, 0.07, 0.07)), "teeth": _lin((0.9, 0.88, 0.82)),
             "hair": hair, "glasses": _lin(idt.glasses_colour), "clothes": _lin(idt.clothes)}
    colours = torch.stack([table.get(name, torch.zeros(3)) for name in PARTS])
    col = colours[part.long()]
    # cheeks and nose a little redder
    front = (p[:, 2] > 0.05).float()
    blush = torch.exp(-((p[:, 0].abs() - 0.065) ** 2 + (p[:, 1] + 0.02) ** 2) / 0.0012) * 0.25 * front
    blush = blush + torch.exp(-(p[:, 0] ** 2 + (p[:, 1] - float(scene.landmarks.nose_tip[1])) ** 2) / 0.0005) * 0.15 * front
    is_skin = (part <= PART["ear"]) & (part >= PART["skin"])
    col = torch.where(is_skin[:, None], col * (1 - blush[:, None] * torch.tensor([0.0, 0.35, 0.35])), col)
    # iris and pupil: by the angle between the gaze and the direction from the eyeball centre
    eye = part == PART["eye"]
    if eye.any():
        pe = p[eye]
        centers = torch.tensor(scene.eye_centers, dtype=torch.float32)
        c = centers[(pe[:, 0] > 0).long()]
        cosang = F.normalize(pe - c, dim=-1) @ torch.tensor(scene.gaze, dtype=torch.float32)
        iris = _lin(idt.iris)
        ce = col[eye]
        ce = torch.where((cosang > 0.86)[:, None], iris, ce)
        ce = torch.where((cosang > 0.965)[:, None], torch.full((3,), 0.01), ce)
        col[eye] = ce
    # inner ear a little darker: by position in the ear's own frame
    ear = part == PART["ear"]
    if ear.any() and scene.ear_prims:
        loc = scene.field.local(p[ear])
        own = loc[torch.arange(loc.shape[0]), :, prim[ear]]
        r = (own[:, 1] / (scene.field.prims[scene.ear_prims[0]].radii[1])) ** 2 + (own[:, 2] / scene.field.prims[scene.ear_prims[0]].radii[2]) ** 2
        col[ear] = col[ear] * torch.where(r < 0.45, 0.72, 1.0)[:, None]
    # hair strands: a soft stripe pattern along the hair flow (top to bottom, away from the parting)
    hr = part == PART["hair"]
    if hr.any():
        q = p[hr]
        phase = 400 * (q[:, 0] - idt.parting).abs() + 30 * torch.sin(25 * q[:, 1]) + 40 * q[:, 2]
        col[hr] = col[hr] * (0.94 + 0.06 * torch.sin(phase))[:, None]
    return col


def background(idt: Identity, u: torch.Tensor, v: torch.Tensor, style: str = "colour") -> torch.Tensor:
    """Linear RGB of the backdrop at normalised image positions u (right), v (down) in [0, 1]:
    a gradient turned by the identity's background angle, with a light vignette (clay: flat)."""
    if style == "clay":
        return _lin(CLAY_BACKDROP).expand(u.shape[0], 3).clone()
    x, y = u - 0.5, v - 0.5
    a = idt.background_angle
    g = (x * np.sin(a) + y * np.cos(a) + 0.5).clamp(0, 1)[:, None]
    top, bottom = _lin(idt.background_top), _lin(idt.background_bottom)
    vignette = 1 - 0.25 * (x * x + y * y)[:, None]
    return (top * (1 - g) + bottom * g) * vignette
