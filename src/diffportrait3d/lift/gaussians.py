"""A set of 3D Gaussians stored as 3D Gaussian Splatting stores them (Kerbl et al. 2023).

Parameters are the unconstrained values the 3DGS PLY holds, so export is a copy:
- means (N, 3): centres in EG3D world units (y up, the face looks towards +z);
- log_scales (N, 3): log of the standard deviations along the Gaussian's own axes;
- quats (N, 4): rotation as a quaternion (w, x, y, z), normalised when used;
- opacity_logits (N,): logit of the peak opacity;
- f_dc (N, 3): degree-0 spherical-harmonic coefficient of the colour; colour = 0.5 + SH_C0 f_dc,
  in the images' own (sRGB) space, [0, 1], as 3DGS viewers read it.
"""

import torch
import torch.nn.functional as F
from torch import nn

SH_C0 = 0.28209479177387814  # the constant degree-0 real spherical harmonic, 1 / (2 sqrt(pi))


class Gaussians(nn.Module):
    def __init__(self, means, log_scales, quats, opacity_logits, f_dc):
        super().__init__()
        self.means = nn.Parameter(torch.as_tensor(means, dtype=torch.float32))
        self.log_scales = nn.Parameter(torch.as_tensor(log_scales, dtype=torch.float32))
        self.quats = nn.Parameter(torch.as_tensor(quats, dtype=torch.float32))
        self.opacity_logits = nn.Parameter(torch.as_tensor(opacity_logits, dtype=torch.float32))
        self.f_dc = nn.Parameter(torch.as_tensor(f_dc, dtype=torch.float32))

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def opacity(self) -> torch.Tensor:
        return torch.sigmoid(self.opacity_logits)

    @property
    def colour(self) -> torch.Tensor:
        """(N, 3) in [0, 1] (the DC term alone can leave the range; clamped as viewers do)."""
        return (0.5 + SH_C0 * self.f_dc).clamp(0, 1)

    def rotations(self) -> torch.Tensor:
        return quat_to_matrix(self.quats)

    def covariances(self) -> torch.Tensor:
        """(N, 3, 3) world-space covariances R S S^T R^T."""
        m = self.rotations() * torch.exp(self.log_scales)[:, None, :]  # R S: column k scaled by s_k
        return m @ m.transpose(1, 2)

    def subset(self, keep: torch.Tensor) -> "Gaussians":
        """A new set holding the Gaussians where `keep` is true (detached copies)."""
        return Gaussians(*(p.detach()[keep].clone() for p in (self.means, self.log_scales, self.quats,
                                                               self.opacity_logits, self.f_dc)))


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """(N, 4) quaternions (w, x, y, z), any norm -> (N, 3, 3) rotation matrices."""
    w, x, y, z = F.normalize(q, dim=-1).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).view(-1, 3, 3)


def colour_to_f_dc(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb - 0.5) / SH_C0
