"""posed views -> 3D Gaussians -> head.ply + head.glb: the flow behind `dp3d lift`.

    >>> from diffportrait3d.app.lift import lift
    >>> lift("out/", "head.ply", FitConfig(steps=300))   # writes head.ply (3DGS) and head.glb (mesh)
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..lift.fit import FitConfig, FitResult

logger = logging.getLogger(__name__)
SUFFIXES = (".ply", ".glb")


@dataclass
class LiftResult:
    fit: FitResult
    mesh: object  # trimesh.Trimesh
    fitted_psnr: float  # mean PSNR (dB) of the fit on the views it was fitted to
    files: dict[str, Path]


def lift_outputs(output, overwrite: bool = False) -> dict[str, Path]:
    """OUT.ply or OUT.glb -> both paths {".ply": ..., ".glb": ...}, checked writable and (unless
    `overwrite`) not there yet."""
    from ..preflight import check_output_file

    output = Path(output)
    if output.suffix.lower() not in SUFFIXES:
        raise UserError(f"-o {output}: name a .ply or .glb file (both are written: the Gaussians and the mesh)")
    paths = {s: check_output_file(output.with_suffix(s)) for s in SUFFIXES}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise UserError(f"-o {output}: {existing[0]} exists; choose another name or pass --overwrite")
    return paths


def lift(views_folder, output, cfg: FitConfig = FitConfig(), mesh_grid: int = 96, overwrite: bool = False,
         progress: bool = True) -> LiftResult:
    """Fit Gaussians to a folder of posed views and write OUT.ply and OUT.glb (atomically)."""
    import torch

    from ..atomic import atomic_path
    from ..lift.fit import fit_gaussians, render_view
    from ..lift.mesh import extract_mesh, write_glb
    from ..lift.ply import write_ply
    from ..lift.views import load_views
    from ..metrics.psnr import psnr

    paths = lift_outputs(output, overwrite)
    views = load_views(views_folder)
    if views.size < cfg.resolution:
        logger.warning("fitting at %d px views of %d px (upsampled)", cfg.resolution, views.size)
    fit = fit_gaussians(views.images, views.labels, cfg, progress=progress)
    target = torch.nn.functional.interpolate(views.images, size=(cfg.resolution,) * 2, mode="area")
    pred = torch.stack([render_view(fit, label).cpu() for label in views.labels])
    fitted = psnr(pred * 2 - 1, target * 2 - 1).mean().item()
    try:
        mesh = extract_mesh(fit.gaussians, mesh_grid)
    except ValueError as e:
        raise UserError(f"no mesh: {e}; fit longer (--steps) or check that the views show one head") from None
    with atomic_path(paths[".ply"]) as tmp:
        write_ply(fit.gaussians, tmp)
    with atomic_path(paths[".glb"]) as tmp:
        write_glb(mesh, tmp)
    return LiftResult(fit, mesh, fitted, paths)
