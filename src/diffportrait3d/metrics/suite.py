"""All metrics of one split in one call: what `dp3d evaluate` needs after rendering.

Every metric becomes a `MetricResult`; one that cannot run (missing weights, no dlib, too few
images) becomes n/a with its reason instead of stopping the others.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch

from ..errors import MetricUnavailable
from .base import MetricResult, check_pair

logger = logging.getLogger(__name__)

PAPER_METRICS = ("LPIPS", "DISTS", "SSIM", "ID", "FID", "POSE")


SAME_IDENTITY = ("LPIPS", "DISTS", "SSIM", "PSNR", "FID")  # meaningless against another person's image


def compute_metrics(generated: torch.Tensor, target: torch.Tensor | None, reference: torch.Tensor | None = None, *,
                    weights_dir=None, metrics: Sequence[str] = PAPER_METRICS + ("PSNR",), lpips_net: str = "alex",
                    arcface_onnx=None, focal: float | None = None, pose_target: torch.Tensor | None = None,
                    pose_renderers=None, target_angles=None,
                    id_gallery: torch.Tensor | None = None, id_own_index=None) -> dict[str, MetricResult]:
    """Score one split. All images are (N, 3, H, W) in [-1, 1].

    generated / target: the rendered views and their ground truth (pairs). target None (no ground
        truth of the same person, e.g. in-the-wild photos): the metrics of SAME_IDENTITY are n/a.
    pose_target: images whose head pose POSE compares with (e.g. the condition images, another
        identity at the wanted camera); default `target`. Only POSE ever looks at it.
    focal: POSE's focal length in pixels (FOCAL x width for EG3D-framed images).
    pose_renderers + target_angles: POSE by render-and-compare (miniature world) instead of dlib.
    id_gallery + id_own_index: also report ID-retrieval (miniature world), see render_compare.
    """
    from . import dists, fid, identity, lpips, pose, psnr, render_compare, ssim

    pose_y = target if pose_target is None else pose_target
    if target is None and pose_y is None and pose_renderers is None:
        raise ValueError("nothing to compare with: give target, pose_target or pose_renderers")
    # y: what the paired metrics compare with; without a target only POSE (or n/a entries) use it
    x, y = check_pair(generated, next(t for t in (target, pose_y, generated) if t is not None))
    n = len(x)
    if (pose_renderers is None) != (target_angles is None):
        raise ValueError("render-and-compare POSE needs both pose_renderers and target_angles")
    if (id_gallery is None) != (id_own_index is None):
        raise ValueError("ID-retrieval needs both id_gallery and id_own_index")
    steps = {
        "LPIPS": lambda: MetricResult.from_values("LPIPS", lpips.lpips(x, y, weights_dir, lpips_net), backend=f"lpips-{lpips_net}-v0.1"),
        "DISTS": lambda: MetricResult.from_values("DISTS", dists.dists(x, y, weights_dir), backend="dists-vgg16"),
        "SSIM": lambda: MetricResult.from_values("SSIM", ssim.ssim(x, y), backend="gaussian 11x11, sigma 1.5"),
        "PSNR": lambda: MetricResult.from_values("PSNR", psnr.psnr(x, y), backend="dB, [0, 1] range"),
        "ID": lambda: identity.identity_similarity(x, y if reference is None else reference, identity.get_embedder(arcface_onnx)),
        "FID": lambda: _fid(fid.fid(x, y, weights_dir), n),
        "POSE": (lambda: render_compare.render_pose_error(x, target_angles, pose_renderers)) if pose_renderers is not None
        else (lambda: pose.pose_error(x, pose_y, focal)),
        "ID-retrieval": lambda: render_compare.identity_retrieval(x, id_gallery, id_own_index) if id_gallery is not None
        else MetricResult.unavailable("ID-retrieval", "no gallery of identity renders given", n),
    }
    wanted = list(metrics) + (["ID-retrieval"] if id_gallery is not None and "ID-retrieval" not in metrics else [])
    results = {}
    for name in wanted:
        if name not in steps:
            raise ValueError(f"unknown metric {name!r}; known: {', '.join(steps)}")
        if target is None and name in SAME_IDENTITY + ("ID",) and not (name == "ID" and reference is not None):
            results[name] = MetricResult.unavailable(name, "no ground truth of the same person to compare with", n)
            continue
        try:
            results[name] = steps[name]()
        except MetricUnavailable as e:
            logger.warning("%s is n/a: %s", name, e.reason)
            results[name] = MetricResult.unavailable(name, e.reason, n)
    return results


def _fid(value: float, n: int) -> MetricResult:
    # one number for the whole set; per_image stays empty
    note = f"computed on {n} images per set; FID is biased upward below a few thousand images" if n < 2048 else None
    return MetricResult("FID", float(value), [], note, "pytorch-fid inception-2015-12-05 pool3")
