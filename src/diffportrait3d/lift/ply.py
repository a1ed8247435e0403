"""The 3D Gaussian Splatting PLY: what 3DGS, gsplat and the common splat viewers read and write.

One `vertex` element, binary little-endian float32 properties in this order:
x y z, nx ny nz (zeros, kept for compatibility), f_dc_0..2 (degree-0 SH colour), opacity (logit),
scale_0..2 (log standard deviations), rot_0..3 (quaternion w x y z, unnormalised allowed).
Degree 0 only: no f_rest_* properties (viewers treat missing higher-order terms as zero).
The header carries the comment `COMMENT`, so a later run knows the file is ours to replace.
"""

import numpy as np
import torch

from .gaussians import Gaussians

FIELDS = (["x", "y", "z", "nx", "ny", "nz"] + [f"f_dc_{i}" for i in range(3)] + ["opacity"]
          + [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)])
COMMENT = "written by diffportrait3d"


def gaussians_to_array(g: Gaussians) -> np.ndarray:
    """(N,) structured float32 array with FIELDS."""
    with torch.no_grad():
        cols = [g.means, torch.zeros_like(g.means), g.f_dc, g.opacity_logits[:, None], g.log_scales, g.quats]
        flat = torch.cat([c.detach().float().cpu() for c in cols], 1).numpy()
    out = np.empty(len(flat), dtype=[(f, "<f4") for f in FIELDS])
    for i, f in enumerate(FIELDS):
        out[f] = flat[:, i]
    return out


def write_ply(g: Gaussians, path) -> None:
    from plyfile import PlyData, PlyElement

    PlyData([PlyElement.describe(gaussians_to_array(g), "vertex")], byte_order="<", comments=[COMMENT]).write(str(path))


def written_by_us(path) -> bool:
    """Whether `path` is a PLY whose header holds our COMMENT (read without loading the data)."""
    try:
        with open(path, "rb") as f:
            if f.readline().strip() != b"ply":
                return False
            for _ in range(64):  # our header has ~20 lines
                line = f.readline().strip()
                if line == f"comment {COMMENT}".encode():
                    return True
                if not line or line == b"end_header":
                    return False
    except OSError:
        return False
    return False


def read_ply(path) -> Gaussians:
    """A 3DGS PLY (ours or another tool's; higher SH degrees are ignored) -> Gaussians."""
    from plyfile import PlyData

    v = PlyData.read(str(path))["vertex"]
    col = lambda names: np.stack([np.asarray(v[n], np.float32) for n in names], 1)  # noqa: E731
    return Gaussians(col(["x", "y", "z"]), col([f"scale_{i}" for i in range(3)]), col([f"rot_{i}" for i in range(4)]),
                     np.asarray(v["opacity"], np.float32), col([f"f_dc_{i}" for i in range(3)]))
