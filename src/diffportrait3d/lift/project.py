"""Project 3D Gaussians into an EG3D camera: pixel centres, EWA 2D covariances, depths.

Same conventions as cameras/eg3d.py (`project`, `pixel_rays`): OpenCV camera frame, normalised
intrinsics scaled by the resolution, and pixel (row i, column j) centred at (x, y) = (j + 0.5,
i + 0.5). The 2D covariance is the EWA splatting approximation (Zwicker et al. 2002) that 3DGS
uses: J W Sigma W^T J^T with J the Jacobian of the perspective projection at the centre, plus a
0.3 px^2 low-pass term so that no Gaussian is thinner than a pixel.
"""

from dataclasses import dataclass

import torch

from ..cameras.eg3d_torch import camera_tensors

NEAR = 0.2  # Gaussians closer to the camera than this (world units) are dropped
LOW_PASS = 0.3  # px^2 added to the 2D covariance's diagonal, as in 3DGS


@dataclass
class Projected:
    means2d: torch.Tensor  # (N, 2) pixel coordinates (x = column, y = row), continuous
    cov2d: torch.Tensor  # (N, 2, 2) px^2
    depth: torch.Tensor  # (N,) camera-space z
    visible: torch.Tensor  # (N,) bool: in front of the near plane


def project_gaussians(means: torch.Tensor, cov3d: torch.Tensor, label, res: int) -> Projected:
    """means (N, 3), cov3d (N, 3, 3) in world space; `label` the camera; `res` pixels per side."""
    w2c, k = camera_tensors(label, means.device, means.dtype)
    rot = w2c[:3, :3]
    cam = means @ rot.T + w2c[:3, 3]  # (N, 3) camera frame
    z = cam[:, 2]
    visible = z > NEAR
    zs = torch.where(visible, z, torch.full_like(z, NEAR))
    fx, fy, skew = k[0, 0] * res, k[1, 1] * res, k[0, 1] * res
    cx, cy = k[0, 2] * res, k[1, 2] * res
    # clamp the tangent of far off-screen centres (as 3DGS does) so their Jacobians stay finite
    lim_x, lim_y = 1.3 * 0.5 / k[0, 0], 1.3 * 0.5 / k[1, 1]  # 1.3 x the tangent of half the field of view
    tx = torch.minimum(torch.maximum(cam[:, 0] / zs, -lim_x), lim_x)
    ty = torch.minimum(torch.maximum(cam[:, 1] / zs, -lim_y), lim_y)
    u = fx * cam[:, 0] / zs + skew * cam[:, 1] / zs + cx
    v = fy * cam[:, 1] / zs + cy
    zero = torch.zeros_like(zs)
    jac = torch.stack([fx / zs, skew / zs, -(fx * tx + skew * ty) / zs,
                       zero, fy / zs, -fy * ty / zs], -1).view(-1, 2, 3)
    m = jac @ rot  # (N, 2, 3): world -> image Jacobian
    cov2d = m @ cov3d @ m.transpose(1, 2) + LOW_PASS * torch.eye(2, device=means.device, dtype=means.dtype)
    return Projected(torch.stack([u, v], -1), cov2d, z, visible)
