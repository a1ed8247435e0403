"""Fit 3D Gaussians to posed views with Adam (L1 + SSIM, as 3DGS), in plain PyTorch.

    >>> views = load_views("out/")                      # a `dp3d render` folder: PNGs + dataset.json
    >>> fit = fit_gaussians(views.images, views.labels, FitConfig(steps=300, resolution=64))
    >>> render_view(fit, views.labels[0], 64)            # (3, 64, 64) in [0, 1]

The backdrop is not part of the head: portrait renders (ours, EG3D's, the diffusion model's) put
the same screen-space backdrop behind every view, which no 3D object explains. So the Gaussians
are composited over one learned background image shared by all views, kept smooth by learning it
at `background_res` and upsampling; the head's silhouette is where the Gaussians are opaque.
No densification: a fixed number of Gaussians, started inside the volume every camera sees.
"""

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..metrics.ssim import ssim_map
from .gaussians import Gaussians
from .init import initial_gaussians, scene_bounds
from .project import project_gaussians
from .rasterise import Rendered, rasterise

logger = logging.getLogger(__name__)


@dataclass
class FitConfig:
    steps: int = 300  # Adam steps
    resolution: int = 64  # views are fitted at resolution x resolution
    gaussians: int = 2000  # how many (fixed: no densification or pruning during the fit)
    views_per_step: int = 4  # views rendered and compared per step
    seed: int = 0  # initial positions and the order of the views
    ssim_weight: float = 0.2  # loss = (1 - w) L1 + w (1 - SSIM), 3DGS's 0.2
    lr_means: float = 2e-3  # times the half-width of the view volume; decays x0.01 over the fit
    lr_scales: float = 1e-2
    lr_quats: float = 5e-3
    lr_opacity: float = 5e-2
    lr_colour: float = 1e-2
    lr_background: float = 5e-2
    background_res: int = 8  # the shared background is learned at this size and upsampled
    device: str = "cpu"


@dataclass
class FitResult:
    gaussians: Gaussians
    background: torch.Tensor  # (3, res, res) in [0, 1], the learned backdrop at the fit's resolution
    losses: list[float] = field(default_factory=list)  # one per step
    seconds: float = 0.0


class Backdrop(nn.Module):
    """One smooth background image shared by every view: (3, r, r) upsampled bilinearly."""

    def __init__(self, colour: torch.Tensor, res: int):
        super().__init__()
        self.grid = nn.Parameter(colour.view(3, 1, 1).expand(3, res, res).clone())

    def forward(self, size: int) -> torch.Tensor:
        return F.interpolate(self.grid[None], size=(size, size), mode="bilinear", align_corners=False)[0].clamp(0, 1)


def render_gaussians(g: Gaussians, label, res: int, background=None) -> Rendered:
    """Rasterise `g` at one EG3D camera, res x res."""
    return rasterise(project_gaussians(g.means, g.covariances(), label, res), g.opacity, g.colour, res, background)


def render_view(fit: FitResult, label, res: int | None = None) -> torch.Tensor:
    """A fitted scene over its backdrop at any camera, (3, res, res) in [0, 1]."""
    res = res or fit.background.shape[-1]
    bg = F.interpolate(fit.background[None], size=(res, res), mode="bilinear", align_corners=False)[0]
    with torch.no_grad():
        return render_gaussians(fit.gaussians, label, res, bg).image.clamp(0, 1)


def border_colour(images: torch.Tensor, width: int = 2) -> torch.Tensor:
    """(V, 3, H, W) -> (3,) mean colour of the images' outer frames."""
    m = torch.ones(images.shape[-2:], dtype=torch.bool, device=images.device)
    m[width:-width, width:-width] = False
    return images[..., m].mean((0, 2))


def fit_gaussians(images: torch.Tensor, labels, cfg: FitConfig = FitConfig(), progress: bool = True) -> FitResult:
    """Fit Gaussians to views (V, 3, H, W) in [0, 1] seen from EG3D cameras `labels` (V, 25)."""
    from tqdm.auto import tqdm

    labels = np.asarray(labels, dtype=np.float64)
    if len(images) != len(labels) or len(images) < 2:
        raise ValueError(f"need two or more views with one label each, got {len(images)} views and {len(labels)} labels")
    torch.manual_seed(cfg.seed)
    device, res = torch.device(cfg.device), cfg.resolution
    target = F.interpolate(images.float(), size=(res, res), mode="area") if images.shape[-1] != res else images.float()
    target = target.to(device)
    g = initial_gaussians(target.cpu(), labels, cfg.gaussians, cfg.seed).to(device)
    backdrop = Backdrop(border_colour(target), cfg.background_res).to(device)
    _, half = scene_bounds(labels)
    groups = [(g.means, cfg.lr_means * half), (g.log_scales, cfg.lr_scales), (g.quats, cfg.lr_quats),
              (g.opacity_logits, cfg.lr_opacity), (g.f_dc, cfg.lr_colour), (backdrop.grid, cfg.lr_background)]
    opt = torch.optim.Adam([{"params": [p], "lr": lr, "initial_lr": lr} for p, lr in groups], eps=1e-15)
    max_log_scale = math.log(0.3 * half)  # no Gaussian wider than a third of the volume
    rng = np.random.default_rng(cfg.seed)
    order: list[int] = []
    losses, start = [], time.perf_counter()
    for step in tqdm(range(cfg.steps), desc="fitting Gaussians", disable=not progress):
        # position lr decays exponentially to 1% (3DGS); the others stay
        opt.param_groups[0]["lr"] = opt.param_groups[0]["initial_lr"] * 0.01 ** (step / max(1, cfg.steps - 1))
        batch = []
        while len(batch) < min(cfg.views_per_step, len(labels)):  # every view once per pass, in random order
            if not order:
                order = list(rng.permutation(len(labels)))
            batch.append(order.pop())
        bg = backdrop(res)
        pred = torch.stack([render_gaussians(g, labels[i], res, bg).image for i in batch])
        loss = view_loss(pred, target[batch], cfg.ssim_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            g.log_scales.clamp_(max=max_log_scale)
        losses.append(loss.item())
    return FitResult(g, backdrop(res).detach(), losses, time.perf_counter() - start)


def view_loss(pred: torch.Tensor, target: torch.Tensor, ssim_weight: float) -> torch.Tensor:
    """(1 - w) L1 + w (1 - SSIM) of (B, 3, H, W) images in [0, 1]."""
    l1 = (pred - target).abs().mean()
    if ssim_weight == 0:
        return l1
    return (1 - ssim_weight) * l1 + ssim_weight * (1 - ssim_map(pred, target).mean().to(pred.dtype))
