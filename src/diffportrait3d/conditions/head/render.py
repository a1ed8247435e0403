"""Sphere-trace the head field from an EG3D camera; shade with Lambert + ambient; add a backdrop.

Rays come from the camera label exactly as EG3D's RaySampler builds them, so a render is
geometrically consistent with its label. Tracing is batched over all pixels and compacts the
set of live rays every step; large images start each ray from a coarse trace at 1/4 resolution.
Light is fixed in world space for a frame, so the views of one frame are 3D-consistent.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..cameras import pixel_rays, split_label
from .expression import Expression
from .identity import Identity
from .scene import Scene, build_scene
from .sdf import PART, PARTS


@dataclass
class HeadRender:
    image: np.ndarray  # (R, R, 3) uint8
    mask: np.ndarray  # (R, R) float32 foreground coverage in [0, 1]
    parts: np.ndarray  # (R, R) uint8 index into sdf.PARTS (0 = background)
    depth: np.ndarray  # (R, R) float32 ray distance, inf on background

    def pil(self) -> Image.Image:
        return Image.fromarray(self.image)


def render_head(identity: Identity | int, label, res: int = 64, expression: Expression | None = None,
                light: tuple | None = None, ssaa: int | None = None) -> HeadRender:
    """Render an identity (or the identity of a seed) at an EG3D camera label."""
    if not isinstance(identity, Identity):
        identity = Identity.sample(int(identity))
    return render_scene(build_scene(identity, expression), label, res, light=light, ssaa=ssaa)


def render_scene(scene: Scene, label, res: int = 64, light: tuple | None = None, ssaa: int | None = None) -> HeadRender:
    """Render a built scene; `light` = (azimuth, elevation) radians overrides the identity's light.

    ssaa: supersampling factor per axis; by default 2 below 160 px (small images need the
    antialiasing), 1 above.
    """
    if not 8 <= res <= 2048:
        raise ValueError(f"res must be within 8..2048, got {res}")
    ss = ssaa or (2 if res < 160 else 1)
    n = res * ss
    origin, dirs = pixel_rays(label, n)
    focal = float(split_label(label)[1][0, 0])
    o = torch.tensor(origin, dtype=torch.float32)
    d = torch.tensor(dirs.reshape(-1, 3), dtype=torch.float32)
    t0, t1 = _sphere_interval(o, d, scene.bound_center, scene.bound_radius)
    eps = 0.35 / (focal * n)  # stop within ~1/3 pixel footprint (relative to distance)
    if n >= 192:
        t0 = _coarse_start(scene, label, n, t0, t1)
    t = trace(scene, o, d, t0, t1, eps)
    hit = torch.isfinite(t)
    rgb = _background(scene.identity, n)
    parts = torch.zeros(n * n, dtype=torch.uint8)
    if hit.any():
        p = o + t[hit, None] * d[hit]
        col, part = shade(scene, p, d[hit], light)
        rgb[hit] = col
        parts[hit] = part.to(torch.uint8)
    img = rgb.view(n, n, 3)
    mask = hit.float().view(n, n)
    if ss > 1:
        img = F.avg_pool2d(img.permute(2, 0, 1)[None], ss)[0].permute(1, 2, 0)
        mask = F.avg_pool2d(mask[None, None], ss)[0, 0]
        onehot = F.one_hot(parts.view(n, n).long(), len(PARTS)).permute(2, 0, 1).float()[None]
        parts = F.avg_pool2d(onehot, ss)[0].argmax(0).to(torch.uint8)
        t = -F.max_pool2d(-t.view(1, 1, n, n), ss)[0, 0]
    image = (_to_srgb(img).clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    return HeadRender(image, mask.numpy(), parts.view(res, res).numpy(), t.reshape(res, res).numpy())


def trace(scene: Scene, o, d, t0, t1, eps: float, steps: int = 96, relax: float = 0.9) -> torch.Tensor:
    """Sphere tracing with live-ray compaction. Returns the hit distance per ray (inf = miss)."""
    out = torch.full((d.shape[0],), float("inf"))
    idx = torch.nonzero(t0 < t1).flatten()
    t, dd, end = t0[idx], d[idx], t1[idx]
    for _ in range(steps):
        if idx.numel() == 0:
            break
        dist = scene.field.distance(o + t[:, None] * dd)
        hit = dist < eps * t
        out[idx[hit]] = t[hit]
        t = t + relax * dist
        live = ~hit & (t < end)
        idx, t, dd, end = idx[live], t[live], dd[live], end[live]
    return out


def _sphere_interval(o, d, center, radius):
    """Entry and exit distances of each ray through the bounding sphere (t0 >= t1 when it misses)."""
    oc = o - torch.tensor(center, dtype=torch.float32)
    b = d @ oc
    disc = b * b - (oc @ oc - radius**2)
    root = disc.clamp_min(0).sqrt()
    t0, t1 = -b - root, -b + root
    t1 = torch.where(disc > 0, t1, t0 - 1)
    return t0.clamp_min(0), t1


def _coarse_start(scene, label, n, t0, t1, factor: int = 4, margin: float = 0.05):
    """Trace at 1/factor resolution; a fine ray may start just before its coarse neighbours' nearest hit.

    A feature thinner than a coarse pixel could be missed by a whole 3x3 coarse neighbourhood;
    the thinnest parts here (glasses rims) are about a coarse pixel wide at 192 px and up.
    """
    m = n // factor
    origin, dirs = pixel_rays(label, m)
    o = torch.tensor(origin, dtype=torch.float32)
    d = torch.tensor(dirs.reshape(-1, 3), dtype=torch.float32)
    c0, c1 = _sphere_interval(o, d, scene.bound_center, scene.bound_radius)
    ct = trace(scene, o, d, c0, c1, 0.35 / (float(split_label(label)[1][0, 0]) * m))
    near = -F.max_pool2d(-ct.view(1, 1, m, m), 3, stride=1, padding=1)  # nearest hit in 3x3
    near = F.interpolate(near, size=(n, n), mode="nearest").flatten()
    # rays whose whole coarse neighbourhood missed start past their exit: they are background
    start = torch.where(torch.isfinite(near), near - margin, t1 + 1)
    return torch.maximum(start, t0)


def _normals_and_parts(scene: Scene, p: torch.Tensor):
    """Unit normals (the field's gradient, by autograd: exact, one pass) and part/primitive ids."""
    with torch.enable_grad():
        q = p.detach().requires_grad_(True)
        d, part, prim = scene.field.distance(q, with_part=True)
        (g,) = torch.autograd.grad(d.sum(), q)
    return F.normalize(g, dim=-1), part, prim


def shade(scene: Scene, p, view_dir, light=None):
    """Colour (linear RGB) and part id of surface points."""
    idt = scene.identity
    n, part, prim = _normals_and_parts(scene, p)
    albedo = _albedo(scene, p, part, prim)
    az, el = light if light is not None else (idt.light_azimuth, idt.light_elevation)
    l = torch.tensor([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)], dtype=torch.float32)
    # ambient occlusion from two probes along the normal darkens creases (eye sockets, ear roots)
    ao = 1.0
    for hstep in (0.012, 0.035):
        ao = ao * (0.55 + 0.45 * (scene.field.distance(p + hstep * n) / hstep).clamp(0, 1))
    diffuse = (n @ l).clamp_min(0)
    fill = 0.5 + 0.5 * n[:, 1]  # sky-ish ambient: brighter on upward-facing surfaces
    light_amt = idt.ambient * (0.6 + 0.4 * fill) * ao + (1 - idt.ambient) * diffuse * ao.sqrt()
    col = albedo * light_amt[:, None]
    shiny = (part == PART["eye"]) | (part == PART["lips"]) | (part == PART["glasses"]) | (part == PART["teeth"])
    half = F.normalize(l - view_dir, dim=-1)
    spec = (n * half).sum(-1).clamp_min(0) ** 40 * torch.where(shiny, 0.5, 0.06)
    return (col + spec[:, None]).clamp(0, 1), part


def _lin(c) -> torch.Tensor:
    return torch.tensor(c, dtype=torch.float32) ** 2.2


def _to_srgb(x: torch.Tensor) -> torch.Tensor:
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
        phase = 400 * (q[:, 0] - idt.parting) + 30 * torch.sin(25 * q[:, 1]) + 40 * q[:, 2]
        col[hr] = col[hr] * (0.94 + 0.06 * torch.sin(phase))[:, None]
    return col


def _background(idt: Identity, n: int) -> torch.Tensor:
    """A linear gradient in screen space, turned by the identity's background angle."""
    u = (torch.arange(n, dtype=torch.float32) + 0.5) / n - 0.5
    yy, xx = torch.meshgrid(u, u, indexing="ij")
    a = idt.background_angle
    g = (xx * np.sin(a) + yy * np.cos(a) + 0.5).clamp(0, 1).reshape(-1, 1)
    top, bottom = _lin(idt.background_top), _lin(idt.background_bottom)
    vignette = 1 - 0.25 * (xx**2 + yy**2).reshape(-1, 1)
    return (top * (1 - g) + bottom * g) * vignette
