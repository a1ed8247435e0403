"""What every metric shares: the image convention and the per-metric result (n/a: errors.MetricUnavailable).

Image convention: every metric function takes float tensors (N, 3, H, W) with values in [-1, 1],
the project's convention (`media.image_to_tensor`). Each metric converts at its own boundary to
what its network or formula expects ([0, 1], uint8 HWC for dlib, ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import UserError


@dataclass
class MetricResult:
    """One column of the report for one split.

    value: mean over the images that produced a number, None when the metric is n/a.
    per_image: one entry per input pair, None where that image gave no number (e.g. no face).
    reason: why the value is n/a, or why some images were skipped.
    backend: which network / estimator produced the number (e.g. 'lpips-alex-v0.1').
    """

    name: str
    value: float | None
    per_image: list[float | None] = field(default_factory=list)
    reason: str | None = None
    backend: str | None = None

    @property
    def count(self) -> int:
        return sum(v is not None for v in self.per_image)

    @property
    def skipped(self) -> int:
        return sum(v is None for v in self.per_image)

    @classmethod
    def from_values(cls, name: str, values, backend: str | None = None, reason: str | None = None) -> "MetricResult":
        """Mean over the finite entries; n/a (with `reason`) when none are."""
        per = [None if v is None or not math.isfinite(float(v)) else float(v) for v in _as_list(values)]
        kept = [v for v in per if v is not None]
        if not kept:
            return cls(name, None, per, reason or "no image gave a value", backend)
        if len(kept) < len(per) and reason is None:
            reason = f"{len(per) - len(kept)} of {len(per)} images gave no value"
        return cls(name, float(np.mean(kept)), per, reason, backend)

    @classmethod
    def unavailable(cls, name: str, reason: str, n: int = 0) -> "MetricResult":
        return cls(name, None, [None] * n, reason, None)

    def to_dict(self) -> dict:
        return {"name": self.name, "value": self.value, "count": self.count, "skipped": self.skipped,
                "reason": self.reason, "backend": self.backend, "per_image": self.per_image}


def _as_list(values) -> list:
    if isinstance(values, torch.Tensor):
        return values.detach().double().cpu().reshape(-1).tolist()
    if isinstance(values, np.ndarray):
        return values.astype(np.float64).reshape(-1).tolist()
    return list(values)


def check_images(x: torch.Tensor, name: str = "images") -> torch.Tensor:
    """Validate an (N, 3, H, W) float batch in [-1, 1]; a single (3, H, W) image becomes N=1."""
    if not isinstance(x, torch.Tensor):
        raise UserError(f"{name}: expected a float tensor (N, 3, H, W) in [-1, 1], got {type(x).__name__}")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] != 3:
        raise UserError(f"{name}: expected shape (N, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise UserError(f"{name}: expected floats in [-1, 1], got dtype {x.dtype}")
    return x


def check_pair(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two batches of the same shape (generated, ground truth)."""
    x, y = check_images(x, "generated"), check_images(y, "target")
    if x.shape != y.shape:
        raise UserError(f"generated and target batches differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    return x, y


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1] (clamped)."""
    return ((x + 1) / 2).clamp(0, 1)


def to_uint8_hwc(x: torch.Tensor) -> list[np.ndarray]:
    """(N, 3, H, W) in [-1, 1] -> list of contiguous uint8 (H, W, 3) RGB arrays (for dlib / OpenCV)."""
    arr = (to_unit(x.detach().float().cpu()) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [np.ascontiguousarray(a) for a in arr]


def from_uint8_hwc(arrays) -> torch.Tensor:
    """A list of uint8 (H, W, 3) arrays (or one) -> (N, 3, H, W) float in [-1, 1]."""
    if isinstance(arrays, np.ndarray) and arrays.ndim == 3:
        arrays = [arrays]
    t = torch.from_numpy(np.stack([np.asarray(a) for a in arrays])).float()
    return (t / 127.5 - 1).permute(0, 3, 1, 2).contiguous()
