"""Evaluation metrics of the paper (section 4.2): LPIPS, DISTS, SSIM, ID, FID, POSE (+ PSNR), and
render-and-compare variants for the miniature world.

Convention: every metric takes float tensors (N, 3, H, W) with values in [-1, 1] and converts at
its own boundary. Paired metrics return one value per pair; `suite.compute_metrics` wraps them
into `MetricResult`s and `report.write_report` writes report.json / report.md / figure.png.
A metric that cannot run here (missing weight file or optional package) raises
`MetricUnavailable` and is reported as n/a with the reason, never as a number from random weights.

Modules: ssim, psnr, lpips, dists, fid (+ inception), identity (+ faces), pose, render_compare,
weights (file registry), fetch (downloads), suite, report. Optional packages (dlib-bin,
face-recognition-models, opencv-python-headless, scikit-image for tests) come with the
`metrics` extra.
"""

from ..errors import MetricUnavailable
from .base import MetricResult

# submodules keep their own names (metrics.ssim is the module, metrics.ssim.ssim the function)
__all__ = ["MetricResult", "MetricUnavailable"]
