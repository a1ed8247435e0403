"""posed views -> 3D Gaussians -> head.ply + head.glb: the flow behind `dp3d lift`, `dp3d render --lift`
and the web page's 3D head.

    >>> from diffportrait3d.app.lift import lift
    >>> lift("out/", "head.ply", FitConfig(steps=300))   # writes head.ply (3DGS) and head.glb (mesh)
    >>> render(settings, ["me.png"], "out/", lift=LiftSettings())   # views, then out/head.ply + out/head.glb

A render lifts the views it holds in memory (the very pixels of its PNGs, with their cameras), so
video outputs lift too: OUT.mp4 gets OUT.ply and OUT.glb beside it, a folder gets head.ply and
head.glb. A render replaces such files only when a dp3d lift wrote them (they say so in their
headers), like its views and its dataset.json; anything else of that name stops it before the model
loads.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..lift.fit import FitConfig, FitResult

logger = logging.getLogger(__name__)
SUFFIXES = (".ply", ".glb")
HEAD = "head"  # a folder output's 3D files: head.ply, head.glb


@dataclass
class LiftSettings:
    """The 3D step of a render (`dp3d render --lift`, the page's checkbox)."""
    fit: FitConfig | None = None  # None: FitConfig's defaults, with the render's seed, on the render's device
    mesh_grid: int = 96  # voxels per side of the density grid the mesh is extracted from


@dataclass
class LiftResult:
    fit: FitResult
    mesh: object  # trimesh.Trimesh
    fitted_psnr: float  # mean PSNR (dB) of the fit on the views it was fitted to
    files: dict[str, Path] = field(default_factory=dict)  # {".ply": ..., ".glb": ...}


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


def render_lift_outputs(output) -> dict[str, Path]:
    """Where a render's 3D files go: FOLDER/head.ply + .glb, or OUT.ply + .glb beside a video OUT.mp4;
    checked writable, and any existing one written by dp3d (the render may replace only those)."""
    from ..preflight import check_output_file
    from .outputs import is_video

    output = Path(output)
    base = output if is_video(output) else output / HEAD
    paths = {s: check_output_file(base.with_suffix(s), "--lift") for s in SUFFIXES}
    for path in paths.values():
        if path.exists() and not written_by_lift(path):
            raise UserError(f"--lift: {path} exists and dp3d did not write it; move it or choose another output")
    return paths


def written_by_lift(path) -> bool:
    """Whether `path` is a .ply or .glb that dp3d's lift wrote (a marker in the file's header)."""
    from ..lift import mesh, ply

    module = {".ply": ply, ".glb": mesh}.get(Path(path).suffix.lower())
    return module is not None and module.written_by_us(path)


def check_render_lift(settings, output) -> dict[str, Path]:
    """`render --lift` before the model loads: an output to write beside, two or more views whose
    cameras will be known, and files it may write. Returns the 3D files' paths."""
    from ..conditions.sources import posed_view_count
    from .settings import DEFAULT_VIEWS

    if output is None:
        raise UserError("--lift writes head.ply and head.glb beside the views; give an output (-o)")
    count, posed = posed_view_count(settings.conditions, settings.views, DEFAULT_VIEWS)
    if not posed:
        raise UserError(f"--lift: the cameras of --conditions {settings.conditions} are unknown (a folder needs a "
                        "dataset.json listing its images); a 3D fit needs them")
    if count < 2:
        raise UserError(f"--lift: {count} view; a 3D fit needs two or more views of the head (--views)")
    return render_lift_outputs(output)


def lift_render(result, output, lift: LiftSettings, seed: int, device: str, progress: bool = False) -> LiftResult:
    """Fit the views of a RenderResult (with their cameras) and write its 3D files beside `output`."""
    import numpy as np
    import torch

    if result.labels is None or len(result.views) < 2:
        raise UserError("--lift: these views have no known cameras or are fewer than two; a 3D fit needs both")
    paths = render_lift_outputs(output)  # again: the folder may have changed while the model ran
    cfg = lift.fit or FitConfig(seed=seed, device=device)
    images = torch.stack([torch.from_numpy(np.asarray(v.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
                          for v in result.views])
    return fit_and_write(images, result.labels, paths, cfg, lift.mesh_grid, progress)


def lift(views_folder, output, cfg: FitConfig = FitConfig(), mesh_grid: int = 96, overwrite: bool = False,
         progress: bool = True) -> LiftResult:
    """Fit Gaussians to a folder of posed views and write OUT.ply and OUT.glb (atomically)."""
    from ..lift.views import load_views

    paths = lift_outputs(output, overwrite)
    views = load_views(views_folder)
    return fit_and_write(views.images, views.labels, paths, cfg, mesh_grid, progress)


def fit_and_write(images, labels, paths: dict[str, Path], cfg: FitConfig, mesh_grid: int = 96,
                  progress: bool = True) -> LiftResult:
    """Views (V, 3, H, W) in [0, 1] + EG3D labels (V, 25) -> Gaussians and mesh, written to paths[".ply"] and
    paths[".glb"], each atomically."""
    import torch

    from ..atomic import atomic_path
    from ..lift.fit import fit_gaussians, render_view
    from ..lift.mesh import extract_mesh, write_glb
    from ..lift.ply import write_ply
    from ..metrics.psnr import psnr

    if images.shape[-1] < cfg.resolution:
        logger.warning("fitting at %d px views of %d px (upsampled)", cfg.resolution, images.shape[-1])
    fit = fit_gaussians(images, labels, cfg, progress=progress)
    target = torch.nn.functional.interpolate(images, size=(cfg.resolution,) * 2, mode="area")
    pred = torch.stack([render_view(fit, label).cpu() for label in labels])
    fitted = psnr(pred * 2 - 1, target * 2 - 1).mean().item()
    try:
        mesh = extract_mesh(fit.gaussians, mesh_grid)
    except ValueError as e:
        raise UserError(f"no mesh: {e}; check that the views show one head (`dp3d lift --steps` fits longer)") from None
    with atomic_path(paths[".ply"]) as tmp:
        write_ply(fit.gaussians, tmp)
    with atomic_path(paths[".glb"]) as tmp:
        write_glb(mesh, tmp)
    return LiftResult(fit, mesh, fitted, dict(paths))


def summary(result: LiftResult) -> str:
    """One sentence on a lift, for the CLI and the page."""
    mesh = result.mesh
    return (f"fitted {len(result.fit.gaussians)} Gaussians to the views in {result.fit.seconds:.0f} s "
            f"(PSNR {result.fitted_psnr:.1f} dB on them); wrote {result.files['.ply']} and {result.files['.glb']} "
            f"({len(mesh.vertices)} vertices, {'watertight' if mesh.is_watertight else 'NOT watertight'}, "
            f"{mesh.extents[0]:.2f} x {mesh.extents[1]:.2f} x {mesh.extents[2]:.2f} EG3D units)")

