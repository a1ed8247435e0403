"""Sphere-trace the head field from an EG3D camera; shade with Lambert + ambient; add a backdrop.

Rays come from the camera label exactly as EG3D's RaySampler builds them, so a render is
geometrically consistent with its label. Tracing is batched over all pixels and compacts the
set of live rays every step, and each ray is only traced between where it enters and leaves
the primitives' bounding ellipsoids (found analytically), so empty space costs nothing.
Light is fixed in world space for a frame, so the views of one frame are 3D-consistent.
style "clay" draws the shape alone (shading.py).
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
from .shading import STYLES, background, shade, to_srgb


@dataclass
class HeadRender:
    image: np.ndarray  # (R, R, 3) uint8
    mask: np.ndarray  # (R, R) float32 foreground coverage in [0, 1]
    parts: np.ndarray  # (R, R) uint8 index into sdf.PARTS (0 = background)
    depth: np.ndarray  # (R, R) float32 ray distance, inf on background

    def pil(self) -> Image.Image:
        return Image.fromarray(self.image)


def render_head(identity: Identity | int, label, res: int = 64, expression: Expression | None = None,
                light: tuple | None = None, ssaa: int | None = None, style: str = "colour") -> HeadRender:
    """Render an identity (or the identity of a seed) at an EG3D camera label."""
    if not isinstance(identity, Identity):
        identity = Identity.sample(int(identity))
    return render_scene(build_scene(identity, expression), label, res, light=light, ssaa=ssaa, style=style)


def render_scene(scene: Scene, label, res: int = 64, light: tuple | None = None, ssaa: int | None = None,
                 style: str = "colour") -> HeadRender:
    """Render a built scene; `light` = (azimuth, elevation) radians overrides the identity's light; style is one
    of shading.STYLES ("clay": shape only, with its own light and backdrop).

    ssaa: samples per pixel edge on silhouettes and part boundaries (adaptive antialiasing: only
    pixels whose part or depth differs from a 4-neighbour's are resampled). Default 2 below 160 px,
    where jagged edges are a large share of the image, and 1 (off) above.
    """
    if not 8 <= res <= 2048:
        raise ValueError(f"res must be within 8..2048, got {res}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    ss = ssaa or (2 if res < 160 else 1)
    focal = float(split_label(label)[1][0, 0])
    origin, dirs = pixel_rays(label, res)
    o = torch.tensor(origin, dtype=torch.float32)
    d = torch.tensor(dirs.reshape(-1, 3), dtype=torch.float32)
    u = (torch.arange(res, dtype=torch.float32) + 0.5) / res
    vv, uu = [g.reshape(-1) for g in torch.meshgrid(u, u, indexing="ij")]
    t0, t1 = scene.field.ray_bounds(o, d)
    rgb, part, t = _render_rays(scene, o, d, t0, t1, 0.35 / (focal * res), uu, vv, light, style)
    mask = torch.isfinite(t).float()
    if ss > 1:
        rgb, part, mask = _antialias(scene, label, res, ss, rgb, part, t, focal, light, style)
    image = (to_srgb(rgb.view(res, res, 3)).clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    return HeadRender(image, mask.view(res, res).numpy(), part.view(res, res).numpy(), t.view(res, res).numpy())


def _render_rays(scene, o, d, t0, t1, eps, uu, vv, light, style):
    """Trace and shade rays: linear RGB (N, 3), part id (N,) uint8, hit distance (N,) (inf = miss)."""
    t = trace(scene, o, d, t0, t1, eps)
    hit = torch.isfinite(t)
    rgb = background(scene.identity, uu, vv, style)
    part = torch.zeros(d.shape[0], dtype=torch.uint8)
    if hit.any():
        col, prt = shade(scene, o + t[hit, None] * d[hit], d[hit], light, style)
        rgb[hit] = col
        part[hit] = prt.to(torch.uint8)
    return rgb, part, t


def _antialias(scene, label, res, ss, rgb, part, t, focal, light, style):
    """Resample edge pixels with ss x ss sub-pixel rays and average them."""
    # nose and ears are skin-coloured: their borders with the skin need no resampling
    material = torch.where((part == PART["nose"]) | (part == PART["ear"]), PART["skin"], part)
    depth = torch.where(torch.isfinite(t), t, torch.full_like(t, 10.0)).view(1, 1, res, res)
    edge = ((_spread(material.view(1, 1, res, res).float()) > 0) | (_spread(depth) > 0.06)).flatten()
    idx = torch.nonzero(edge).flatten()
    mask = torch.isfinite(t).float()
    if idx.numel() == 0:
        return rgb, part, mask
    n = res * ss
    origin, dirs = pixel_rays(label, n)
    # sub-pixel (a, b) of pixel (i, j) is fine pixel (i*ss + a, j*ss + b)
    i, j = idx // res, idx % res
    a, b = torch.meshgrid(torch.arange(ss), torch.arange(ss), indexing="ij")
    fi = (i[:, None] * ss + a.reshape(1, -1)).flatten()
    fj = (j[:, None] * ss + b.reshape(1, -1)).flatten()
    d = torch.tensor(dirs, dtype=torch.float32)[fi, fj]
    o = torch.tensor(origin, dtype=torch.float32)
    t0, t1 = scene.field.ray_bounds(o, d)
    # search each sub-ray only around the depths hit near its pixel (edges always have a hit):
    # a sub-ray that passes the farthest neighbouring hit sees what its missing neighbours saw
    near = -F.max_pool2d(-t.view(1, 1, res, res), 3, 1, 1).flatten()[idx].repeat_interleave(ss * ss)
    finite = torch.where(torch.isfinite(t), t, torch.zeros_like(t)).view(1, 1, res, res)
    far = F.max_pool2d(finite, 3, 1, 1).flatten()[idx].repeat_interleave(ss * ss)
    ok = torch.isfinite(near)
    t0 = torch.where(ok, torch.maximum(t0, near - 0.02), t0)
    t1 = torch.where(ok, torch.minimum(t1, far + 0.02), t1)
    sub_rgb, sub_part, sub_t = _render_rays(scene, o, d, t0, t1, 0.35 / (focal * n),
                                            (fj.float() + 0.5) / n, (fi.float() + 0.5) / n, light, style)
    k = ss * ss
    rgb, part, mask = rgb.clone(), part.clone(), mask.clone()
    rgb[idx] = sub_rgb.view(-1, k, 3).mean(1)
    mask[idx] = torch.isfinite(sub_t).float().view(-1, k).mean(1)
    votes = F.one_hot(sub_part.view(-1, k).long(), len(PARTS)).sum(1)
    part[idx] = votes.argmax(1).to(torch.uint8)  # ties go to the lower id (background, skin first)
    return rgb, part, mask


def _spread(x: torch.Tensor) -> torch.Tensor:
    """max - min over each pixel and its 4 neighbours, (1, 1, H, W)."""
    pad = F.pad(x, (1, 1, 1, 1), mode="replicate")
    nb = torch.stack([x, pad[..., :-2, 1:-1], pad[..., 2:, 1:-1], pad[..., 1:-1, :-2], pad[..., 1:-1, 2:]])
    return nb.amax(0) - nb.amin(0)


def trace(scene: Scene, o, d, t0, t1, eps: float, steps: int = 64, relax: float = 0.9) -> torch.Tensor:
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


