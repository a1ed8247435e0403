"""Where each token of a target view lies in a reference image, through a proxy head: a sphere.

Why: the read path's position bias (reference_position.py) tells a query at pixel p to prefer the
reference's tokens at p. That is right when the target camera is the reference's and wrong once the
camera moves (the face has moved in the image). Casting p's ray onto a sphere that stands for the head
and projecting the hit into the reference camera gives where p's surface point is in the reference; rays
that miss the head keep their place (the miniature world's backdrop is fixed to the image, and a
portrait's background moves little under an orbit about the head). Hits that face away from the
reference camera are marked invisible: nothing there to copy.

The sphere is fitted to the miniature world's heads (depth of renders of held-out subjects at
yaw -80..80: centre (0, 0.016, 0.002), used as (0, 0.016, 0); radius 0.266, mean residual 0.03),
which sit where EG3D's FFHQ crops put a head, so the same proxy serves the full-size model. At the reference's own camera the warp
is the identity exactly.
"""

import torch

from ..cameras.eg3d_torch import pixel_uv, project, rays, split_label

CENTRE = (0.0, 0.016, 0.0)
RADIUS = 0.266


def token_warp(reference_labels: torch.Tensor, target_labels: torch.Tensor, side: int, centre=CENTRE,
               radius: float = RADIUS) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference-image positions (B, R, side*side, 2) as (u, v) in [0, 1], and visibility (B, R, side*side)
    in {0, 1}, of the token centres of B target views (labels (B, 25)) in each of R references
    (labels (B or 1, R, 25)); tokens in row-major order."""
    b = target_labels.shape[0]
    uv = pixel_uv(side, side, target_labels.device).reshape(-1, 2)  # (n, 2)
    o, d = rays(target_labels, uv)  # (B, 3), (B, n, 3)
    c = torch.tensor(centre, dtype=torch.float64, device=o.device)
    oc = (o - c)[:, None]  # (B, 1, 3)
    half_b = (d * oc).sum(-1)  # ray |o + s d - c|^2 = r^2 with |d| = 1: s^2 + 2 half_b s + |oc|^2 - r^2 = 0
    disc = half_b**2 - (oc**2).sum(-1) + radius**2
    hit = disc > 0
    s = -half_b - disc.clamp_min(0).sqrt()  # the nearer root
    x = o[:, None] + s[..., None] * d  # (B, n, 3) world points on the sphere (meaningless where not hit)

    refs = reference_labels.double().expand(b, -1, -1)  # (B, R, 25)
    r = refs.shape[1]
    c2w, k = split_label(refs.flatten(0, 1))  # (B R, 4, 4), (B R, 3, 3)
    w2c = torch.linalg.inv(c2w)
    xr = x.repeat_interleave(r, dim=0)  # (B R, n, 3)
    cam = xr @ w2c[:, :3, :3].transpose(-1, -2) + w2c[:, None, :3, 3]
    ref_uv = project(cam, k)[..., :2].view(b, r, -1, 2)
    # visible from the reference: the sphere's normal at the hit faces the reference camera
    normal = (xr - c) / radius
    facing = (normal * (c2w[:, None, :3, 3] - xr)).sum(-1).view(b, r, -1) > 0
    hit = hit[:, None].expand(b, r, -1)
    warped = torch.where(hit[..., None], ref_uv, uv.expand(b, r, -1, -1))
    visible = (~hit | facing).to(torch.float64)
    return warped.float(), visible.float()
