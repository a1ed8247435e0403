"""EG3D camera math on torch tensors: the conventions of eg3d.py, batched and on the model's device.

eg3d.py (numpy) serves the renderer, the data and the CLI; the networks (the 3D-aware noise model,
the reference position bias), the pipeline and the Gaussian lift need the same math on tensors.
Both follow one convention (tests/test_cameras.py checks that they agree): a label is the 4x4
camera-to-world matrix flattened row-major, then the 3x3 intrinsics normalised by image size,
flattened. Camera axes are OpenCV's (+x right, +y down, +z forward); a camera point (x, y, z) lands
at normalised image coordinates u = (fx x + skew y) / z + cx, v = fy y / z + cy, with u, v in
[0, 1] across the image. Poses are handled in float64: labels are stored with ~7 digits, and the
product of two nearly equal poses must come out as the identity, not as float32 round-off.
"""

import numpy as np
import torch
import torch.nn.functional as F

from . import eg3d


def split_label(label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 25) -> cam2world (..., 4, 4), normalised intrinsics (..., 3, 3)."""
    if label.shape[-1] != 25:
        raise ValueError(f"a camera label has 25 values (4x4 cam2world + 3x3 intrinsics), got shape {tuple(label.shape)}")
    return label[..., :16].unflatten(-1, (4, 4)), label[..., 16:].unflatten(-1, (3, 3))


def camera_tensors(label, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """One EG3D label (25,) -> world-to-camera (4, 4) and intrinsics (3, 3) tensors.

    The inverse is taken in float64 (numpy) before the cast, so float32 carries no inversion error.
    """
    c2w, k = eg3d.split_label(np.asarray(label, dtype=np.float64))
    w2c = np.linalg.inv(c2w)
    return torch.tensor(w2c, dtype=dtype, device=device), torch.tensor(k, dtype=dtype, device=device)


def relative_pose(src_label: torch.Tensor, dst_label: torch.Tensor) -> torch.Tensor:
    """The rigid transform taking dst-camera coordinates to src-camera coordinates, (..., 4, 4), float64."""
    c2w_src, _ = split_label(src_label.double())
    c2w_dst, _ = split_label(dst_label.double())
    return torch.linalg.inv(c2w_src) @ c2w_dst


def pixel_uv(h: int, w: int, device=None) -> torch.Tensor:
    """Normalised coordinates of the pixel centres, (h, w, 2) as (u = column, v = row)."""
    v = (torch.arange(h, device=device, dtype=torch.float64) + 0.5) / h
    u = (torch.arange(w, device=device, dtype=torch.float64) + 0.5) / w
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack([uu, vv], dim=-1)


def unproject(uv: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Camera-frame directions with z = 1 through normalised image points.

    uv (..., 2) and intrinsics (B, 3, 3) broadcast as uv[None] -> (B, ..., 3). Inverts `project`
    (skew included, as EG3D's RaySampler does).
    """
    k = intrinsics.double()
    extra = (None,) * (uv.dim() - 1)
    fx, fy, cx, cy, sk = (k[(slice(None), i, j) + extra] for i, j in [(0, 0), (1, 1), (0, 2), (1, 2), (0, 1)])
    y = (uv[..., 1].double() - cy) / fy
    x = (uv[..., 0].double() - cx - sk * y) / fx
    return torch.stack([x, y, torch.ones_like(x)], dim=-1)


def project(points: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Camera-frame points (B, N, 3) -> (u, v, z) (B, N, 3): normalised image coordinates and depth."""
    z = points[..., 2:3]
    uvw = points @ intrinsics.transpose(-1, -2).to(points)
    return torch.cat([uvw[..., :2] / z.clamp_min(1e-6), z], dim=-1)


def rays(label: torch.Tensor, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """World ray origins (B, 3) and unit directions (B, ..., 3) through normalised image points uv (..., 2)."""
    c2w, k = split_label(label.double())
    d = unproject(uv, k)
    d = torch.einsum("bij,b...j->b...i", c2w[:, :3, :3], d)
    return c2w[:, :3, 3], F.normalize(d, dim=-1)


def viewing_direction(labels: torch.Tensor) -> torch.Tensor:
    """Unit viewing directions (..., 3) of EG3D labels (..., 25): the cam2world matrix's third column."""
    return F.normalize(split_label(labels.double())[0][..., :3, 2], dim=-1)


def viewing_angle(reference_labels: torch.Tensor, target_labels: torch.Tensor) -> torch.Tensor:
    """(B, R) degrees between each target's (B, 25) and each reference's (B or 1, R, 25) viewing direction."""
    cos = (viewing_direction(reference_labels) * viewing_direction(target_labels)[:, None]).sum(-1).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cos))
