"""Frustum volumes of the 3D-aware noise model: cell centres, resampling into another camera, compositing.

Camera math (labels, rays, projection) is cameras/eg3d_torch.py's; this file adds what only the noise
model does with it. A frustum volume (B, C, D, h, w) of a camera holds, at index (d, i, j), the
camera-frame point on the ray through the pixel centre u = (j + 0.5) / w, v = (i + 0.5) / h at depth
(camera z) z_d = near + (d + 0.5) (far - near) / D. `grid_sample(align_corners=False)` addresses
exactly these cell centres, so resampling a volume into its own camera is the identity.
"""

import torch
import torch.nn.functional as F

from ..cameras.eg3d_torch import pixel_uv, project, relative_pose, split_label, unproject


def depths(near: float, far: float, n: int, device=None) -> torch.Tensor:
    """Cell-centre depths (n,) of a frustum volume: z_d = near + (d + 0.5) (far - near) / n."""
    return near + (torch.arange(n, device=device, dtype=torch.float64) + 0.5) * (far - near) / n


def frustum_points(intrinsics: torch.Tensor, depth: int, h: int, w: int, near: float, far: float) -> torch.Tensor:
    """Camera-frame cell centres of a frustum volume, (B, D, h, w, 3), float64."""
    dirs = unproject(pixel_uv(h, w, intrinsics.device), intrinsics)  # (B, h, w, 3), z = 1
    z = depths(near, far, depth, intrinsics.device)
    return dirs[:, None] * z[None, :, None, None, None]


def resample(volume: torch.Tensor, src_label: torch.Tensor, dst_label: torch.Tensor, near: float, far: float,
             out_shape: tuple[int, int, int] | None = None) -> torch.Tensor:
    """Resample the frustum volume of camera `src` into the frustum of camera `dst`.

    volume (B, C, D, h, w) in src's frustum; labels (B, 25); out_shape (D', h', w') defaults to the
    input's. Returns (B, C, D', h', w'); cells of dst that fall outside src's frustum read zeros.
    """
    b, _, d, h, w = volume.shape
    d2, h2, w2 = out_shape or (d, h, w)
    _, k_dst = split_label(dst_label)
    _, k_src = split_label(src_label)
    pts = frustum_points(k_dst, d2, h2, w2, near, far)  # (B, D', h', w', 3) in dst camera
    rel = relative_pose(src_label, dst_label)  # dst camera -> src camera
    pts = pts.flatten(1, 3) @ rel[:, :3, :3].transpose(-1, -2) + rel[:, None, :3, 3]  # (B, N, 3) in src camera
    uvz = project(pts, k_src.double())
    # grid_sample wants (x -> w, y -> h, z -> D) in [-1, 1]; align_corners=False puts cell centres at (i + 0.5) / n
    grid = torch.stack([2 * uvz[..., 0] - 1, 2 * uvz[..., 1] - 1, 2 * (uvz[..., 2] - near) / (far - near) - 1], dim=-1)
    grid = grid.view(b, d2, h2, w2, 3).to(volume.dtype)
    return F.grid_sample(volume, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def step_lengths(intrinsics: torch.Tensor, depth: int, h: int, w: int, near: float, far: float) -> torch.Tensor:
    """World length of one depth cell along each pixel ray, (B, 1, h, w): dz * |(x/z, y/z, 1)|."""
    dirs = unproject(pixel_uv(h, w, intrinsics.device), intrinsics)  # (B, h, w, 3)
    return (dirs.norm(dim=-1) * (far - near) / depth)[:, None].float()


def composite(density: torch.Tensor, features: torch.Tensor, step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Alpha-composite front to back along D (index 0 = nearest).

    density (B, D, h, w) >= 0 per unit length, features (B, C, D, h, w), step (B, 1, h, w) the
    length of one cell. Returns the feature map (B, C, h, w) and the opacity (B, 1, h, w).
    """
    alpha = 1 - torch.exp(-density * step)
    # transmittance before each cell: prod of (1 - alpha) over the cells in front of it
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1] + 1e-10], dim=1), dim=1)
    weights = alpha * trans  # (B, D, h, w)
    return (weights[:, None] * features).sum(dim=2), weights.sum(dim=1, keepdim=True)
