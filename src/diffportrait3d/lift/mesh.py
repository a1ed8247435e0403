"""A triangle mesh with vertex colours from fitted Gaussians: density grid -> marching cubes -> GLB.

The density at x is sum_i opacity_i exp(-(x - mu_i)^T Sigma_i^-1 (x - mu_i) / 2), the Gaussians'
own opacity field; the surface is where it crosses `level` (0.5: half opaque). Splatting fits put
Gaussians on the visible surface and leave the inside empty, so the occupied voxels are reduced
to the largest connected piece (floaters go) and its enclosed cavities are filled before marching
cubes; the grid is padded with empty voxels, so the surface is closed. Vertex colours are the
density-weighted mean colour of the Gaussians at each vertex. The GLB's asset.generator names
us (GENERATOR), so a later run knows the file is ours to replace.
"""

import json
import struct
from dataclasses import dataclass

import numpy as np
import torch

from .gaussians import Gaussians

LEVEL = 0.5
MAX_HALF = 8  # voxels either side of a Gaussian's centre that it may reach
GENERATOR = "diffportrait3d (trimesh)"


@dataclass
class DensityGrid:
    density: np.ndarray  # (n, n, n) indexed [i, j, k] along x, y, z
    colour_sum: np.ndarray  # (n, n, n, 3) density-weighted sum of colours (/ density = mean colour)
    origin: np.ndarray  # (3,) world position of voxel [0, 0, 0]
    step: float  # voxel size in world units


def gaussian_bounds(g: Gaussians, min_opacity: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Box around the Gaussians that matter: centres +- 3 of their largest standard deviation."""
    with torch.no_grad():
        keep = g.opacity >= min_opacity
        if not keep.any():
            raise ValueError("no Gaussian is opaque enough to make a mesh of")
        means, sigma = g.means[keep], torch.exp(g.log_scales[keep]).amax(1, keepdim=True)
        return (means - 3 * sigma).amin(0).cpu().numpy(), (means + 3 * sigma).amax(0).cpu().numpy()


def density_grid(g: Gaussians, size: int = 96, bounds=None) -> DensityGrid:
    """The opacity field and colour on a size^3 grid covering `bounds` (default gaussian_bounds), cubic voxels."""
    lo, hi = bounds if bounds is not None else gaussian_bounds(g)
    step = float(np.max(hi - lo)) / (size - 1)
    origin = (lo + hi) / 2 - step * (size - 1) / 2
    with torch.no_grad():
        means = (g.means.cpu().double() - torch.tensor(origin)) / step  # in voxels
        cov = g.covariances().cpu().double() / step**2
        inv = torch.linalg.inv(cov)
        opacity = g.opacity.cpu().double()
        colour = g.colour.cpu().double()
        # box of voxels where opacity exp(-m/2) >= 1e-3 (as in the rasteriser, exact per axis)
        m = 2 * torch.log((opacity / 1e-3).clamp_min(1))
        half = torch.sqrt(m[:, None] * torch.diagonal(cov, dim1=1, dim2=2)).clamp(max=MAX_HALF)
        lo_i = torch.ceil(means - half).clamp(0, size).long()
        hi_i = torch.floor(means + half).clamp(-1, size - 1).long()
        ext = (hi_i - lo_i + 1).clamp_min(0)  # (N, 3)
        counts = ext.prod(1)
        idx = torch.repeat_interleave(torch.arange(len(means)), counts)
        local = torch.arange(int(counts.sum())) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        e = ext[idx]
        ijk = lo_i[idx] + torch.stack([local // (e[:, 1] * e[:, 2]), (local // e[:, 2]) % e[:, 1], local % e[:, 2]], 1)
        d = ijk.double() - means[idx]
        w = opacity[idx] * torch.exp(-0.5 * torch.einsum("pi,pij,pj->p", d, inv[idx], d))
        flat = (ijk[:, 0] * size + ijk[:, 1]) * size + ijk[:, 2]
        density = torch.zeros(size**3, dtype=torch.float64).index_add_(0, flat, w)
        col = torch.zeros(size**3, 3, dtype=torch.float64).index_add_(0, flat, w[:, None] * colour[idx])
    return DensityGrid(density.view(size, size, size).numpy(), col.view(size, size, size, 3).numpy(), origin, step)


def solid(grid: DensityGrid, level: float = LEVEL) -> np.ndarray:
    """Field for marching cubes: the largest connected piece above `level`, with its cavities filled."""
    from scipy import ndimage

    occ = grid.density > level
    labels, count = ndimage.label(occ)
    if count == 0:
        raise ValueError(f"the density never reaches {level}: the fit has no solid surface")
    sizes = ndimage.sum(occ, labels, index=np.arange(1, count + 1))
    piece = ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))
    field = np.where(piece, np.maximum(grid.density, 2 * level * (piece & ~occ)), np.minimum(grid.density, 0.5 * level))
    return np.pad(field, 1)  # empty border: the surface closes where the grid ends


def extract_mesh(g: Gaussians, size: int = 96, level: float = LEVEL, bounds=None):
    """A trimesh.Trimesh of the fitted head with vertex colours (RGBA uint8), in EG3D world units."""
    import trimesh
    from scipy import ndimage
    from skimage.measure import marching_cubes

    grid = density_grid(g, size, bounds)
    verts, faces, _, _ = marching_cubes(solid(grid, level), level)
    verts = verts - 1  # the padding
    # colour: trilinear lookups of the weighted colour sum and of the density at the vertices, divided
    look = lambda a: ndimage.map_coordinates(a, verts.T, order=1, mode="nearest")  # noqa: E731
    rgb = np.stack([look(grid.colour_sum[..., c]) for c in range(3)], 1) / np.maximum(look(grid.density), 1e-12)[:, None]
    rgba = np.concatenate([np.clip(rgb * 255 + 0.5, 0, 255), np.full((len(rgb), 1), 255)], 1).astype(np.uint8)
    mesh = trimesh.Trimesh(grid.origin + verts * grid.step, faces, vertex_colors=rgba, process=True)
    if mesh.volume < 0:
        mesh.invert()  # outward normals
    return mesh


def write_glb(mesh, path) -> None:
    def name_us(tree):
        tree["asset"]["generator"] = GENERATOR

    mesh.export(str(path), file_type="glb", tree_postprocessor=name_us)


def written_by_us(path) -> bool:
    """Whether `path` is a GLB whose asset.generator is ours (reads only the header and the JSON chunk)."""
    try:
        with open(path, "rb") as f:
            magic, _, _, length, kind = struct.unpack("<4sIIII", f.read(20))
            if magic != b"glTF" or kind != 0x4E4F534A or length > 2**24:  # "JSON"
                return False
            return json.loads(f.read(length)).get("asset", {}).get("generator") == GENERATOR
    except (OSError, struct.error, ValueError, AttributeError):
        return False


def silhouette(mesh, label, res: int) -> np.ndarray:
    """(res, res) bool: the pixels whose centres the mesh covers at an EG3D camera.

    The outline of a closed mesh is the union of its front-facing triangles, filled with PIL.
    """
    from PIL import Image, ImageDraw

    from ..cameras import project, split_label

    c2w, _ = split_label(label)
    uv = project(mesh.vertices, label, res) - 0.5  # PIL puts pixel centres on integers
    tri = mesh.vertices[mesh.faces]
    facing = np.einsum("ij,ij->i", mesh.face_normals, tri.mean(1) - c2w[:3, 3]) < 0
    img = Image.new("1", (res, res), 0)
    draw = ImageDraw.Draw(img)
    for face in mesh.faces[facing]:
        draw.polygon([tuple(p) for p in uv[face]], fill=1)
    return np.asarray(img, dtype=bool)
