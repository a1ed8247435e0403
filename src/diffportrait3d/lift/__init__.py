"""From posed views to a 3D head: fit 3D Gaussians (pure PyTorch), export a 3DGS PLY and a GLB mesh."""

from .fit import FitConfig, FitResult, fit_gaussians, render_gaussians, render_view
from .gaussians import Gaussians
from .mesh import extract_mesh, silhouette, write_glb
from .ply import read_ply, write_ply

__all__ = ["FitConfig", "FitResult", "fit_gaussians", "render_gaussians", "render_view", "Gaussians", "extract_mesh",
           "silhouette", "write_glb", "read_ply", "write_ply"]
