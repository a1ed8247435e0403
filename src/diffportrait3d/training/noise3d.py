"""Training the 3D-aware noise model: pixel L2 + a perceptual term on multi-view pairs.

The perceptual term is VGG16 feature L2 (relu1_2 .. relu4_3, Johnson et al. style) when a VGG16
file is in the weights folder (`vgg16.safetensors` or torchvision's `vgg16-397923af.pth`), and
1 - SSIM otherwise: SSIM needs no weights, so training never depends on a download. Which one ran
is logged, returned in the logs and written into the model config (`training_loss`).

A batch is {"reference": (B, 3, H, W), "reference_label": (B, 25), "target": (B, 3, H, W),
"target_label": (B, 25)}, images in [-1, 1]: same subject and frame, two cameras.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..metrics.backbones import VGG_TAPS, tapped, vgg16_features
from ..metrics.ssim import ssim_map
from ..metrics.weights import load_into, load_state_dict

logger = logging.getLogger(__name__)

VGG_FILES = ("vgg16.safetensors", "vgg16-397923af.pth")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Noise3DLossConfig:
    l2_weight: float = 1.0  # pixel MSE on [-1, 1] images
    perceptual_weight: float = 0.5  # times (1 - SSIM) or the VGG feature loss
    weights_dir: str | None = None  # folder that may hold a VGG16 file; None -> SSIM


class SSIMLoss(nn.Module):
    """1 - mean SSIM (11x11 Gaussian window, sigma 1.5, as metrics.ssim), differentiable, in the input dtype."""

    name = "ssim"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # metrics.ssim_map computes in float64 for exact scores; a loss needs gradients, not digits
        s = ssim_map((pred + 1) / 2, (target + 1) / 2, 1.0)
        return (1 - s.mean()).to(pred.dtype)


class VGGLoss(nn.Module):
    """Mean squared difference of frozen VGG16 activations at relu1_2, relu2_2, relu3_3, relu4_3."""

    name = "vgg16"

    def __init__(self, features: nn.Sequential):
        super().__init__()
        self.features = features.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        taps = VGG_TAPS[:4]
        norm = lambda x: ((x + 1) / 2 - self.mean) / self.std  # noqa: E731
        fp = tapped(self.features, norm(pred), taps)
        with torch.no_grad():
            ft = tapped(self.features, norm(target), taps)
        return sum(F.mse_loss(a, b) for a, b in zip(fp, ft)) / len(taps)


def find_vgg16(weights_dir: str | Path | None) -> Path | None:
    if weights_dir is None:
        return None
    for name in VGG_FILES:
        if (Path(weights_dir) / name).is_file():
            return Path(weights_dir) / name
    return None


def perceptual_loss(weights_dir: str | Path | None = None) -> nn.Module:
    """VGGLoss when a VGG16 file is in `weights_dir`, else SSIMLoss; logs which one (see `.name`)."""
    path = find_vgg16(weights_dir)
    if path is None:
        where = f"no {' or '.join(VGG_FILES)} in {weights_dir}" if weights_dir else "no weights folder given"
        logger.info("noise3d perceptual term: SSIM (%s)", where)
        return SSIMLoss()
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        sd = load_state_dict(path.parent, "vgg16", "noise3d VGG loss")  # sha256-checked torchvision file
    # accept torchvision's full state dict ("features.N.*") or the features alone ("N.*")
    feats = {k.removeprefix("features."): v for k, v in sd.items() if not k.startswith("classifier.")}
    features = vgg16_features()[: VGG_TAPS[3] + 1]
    try:
        load_into(features, {k: v for k, v in feats.items() if int(k.split(".")[0]) <= VGG_TAPS[3]}, str(path))
    except ValueError as e:  # UserError is a ValueError; int() of a foreign key name too
        raise UserError(f"{path} is not a VGG16 state dict ({e})") from None
    logger.info("noise3d perceptual term: VGG16 features from %s", path)
    return VGGLoss(features)


def noise3d_loss(model: nn.Module, batch: dict, perceptual: nn.Module | None = None,
                 config: Noise3DLossConfig | None = None) -> tuple[torch.Tensor, dict]:
    """Loss of one batch of pairs and its logs ({"loss", "l2", "perceptual"} floats, "perceptual_kind").

    `perceptual` defaults to SSIM; build it once with `perceptual_loss(weights_dir)` for training.
    """
    config = config or Noise3DLossConfig()
    perceptual = perceptual if perceptual is not None else SSIMLoss()
    pred = model(batch["reference"], batch["reference_label"], batch["target_label"])
    l2 = F.mse_loss(pred, batch["target"])
    per = perceptual(pred, batch["target"])
    loss = config.l2_weight * l2 + config.perceptual_weight * per
    logs = {"loss": loss.item(), "l2": l2.item(), "perceptual": per.item(), "perceptual_kind": perceptual.name}
    return loss, logs


def train_noise3d(model: nn.Module, batches: Iterable[dict], steps: int, lr: float = 2e-3, weight_decay: float = 0.0,
                  loss_config: Noise3DLossConfig | None = None, warmup: int = 20, clip: float = 1.0,
                  log_every: int = 50, callback: Callable[[int, dict], None] | None = None) -> list[dict]:
    """A plain loop for small runs (fixtures, tests): AdamW, linear warm-up then cosine decay, clipping.

    `batches` is iterated until `steps` optimiser steps are done (it must yield at least that many).
    The full `dp3d train --stage noise3d` loop calls `noise3d_loss` per batch instead. Returns the
    per-step logs and records the perceptual term in `model.config.training_loss`.
    """
    loss_config = loss_config or Noise3DLossConfig()
    perceptual = perceptual_loss(loss_config.weights_dir)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, warmup))
                                              * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    model.train()
    history, t0, it = [], time.perf_counter(), iter(batches)
    for step in range(steps):
        batch = next(it)
        loss, logs = noise3d_loss(model, batch, perceptual, loss_config)
        if not math.isfinite(logs["loss"]):
            raise RuntimeError(f"noise3d loss is {logs['loss']} at step {step}; lower the learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        sched.step()
        logs.update(step=step + 1, lr=sched.get_last_lr()[0], seconds=time.perf_counter() - t0)
        history.append(logs)
        if callback:
            callback(step + 1, logs)
        if log_every and ((step + 1) % log_every == 0 or step + 1 == steps):
            logger.info("noise3d step %d/%d loss %.4f l2 %.4f %s %.4f", step + 1, steps, logs["loss"], logs["l2"],
                        perceptual.name, logs["perceptual"])
    model.eval()
    model.register_to_config(training_loss=perceptual.name)
    return history
