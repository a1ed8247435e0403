"""Every training loss, in one place.

- `epsilon_loss`: the diffusion stages (base, reference, view, consistency): MSE between predicted
  and true noise per sample, optionally Min-SNR weighted (training/noising.py: min_snr_weights);
- `vae_loss`: the miniature VAE: L1 + SSIM reconstruction and a small KL term;
- `noise3d_loss`: the 3D-aware noise model: pixel L2 + a perceptual term. The perceptual term is VGG16
  feature L2 (relu1_2 .. relu4_3, Johnson et al. style) when a VGG16 file is in the weights folder
  (`vgg16.safetensors` or torchvision's `vgg16-397923af.pth`), and 1 - SSIM otherwise: SSIM needs no
  weights, so training never depends on a download. Which one ran is logged and written into the
  model config (`training_loss`).

Every loss is a mean over samples of equal-sized per-sample terms, so a batch of 4 gives the same
gradient as 2 accumulated micro-batches of 2 or 2 processes of 2 (tests/test_training_distributed.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..metrics.backbones import VGG_TAPS, tapped, vgg16_features
from ..metrics.ssim import ssim_map
from ..metrics.weights import load_into, load_state_dict
from .noising import min_snr_weights

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


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean over samples of weight x per-sample MSE (equals F.mse_loss when all weights are 1)."""
    per_sample = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return (weights.to(per_sample) * per_sample).mean()


def epsilon_loss(eps: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor, t: torch.Tensor,
                 snr_gamma: float = 0.0, snr_floor: float = 0.0) -> torch.Tensor:
    """Epsilon-prediction MSE, Min-SNR-gamma weighted when snr_gamma > 0, x0-weighted below SNR = snr_floor."""
    return weighted_mse(eps, noise, min_snr_weights(alphas_cumprod, t, snr_gamma, snr_floor))


def vae_loss(x: torch.Tensor, rec: torch.Tensor, dist, ssim: nn.Module, ssim_weight: float, kl_weight: float):
    """L1 + ssim_weight x (1 - SSIM) + kl_weight x KL per latent element; returns (loss, logs)."""
    l1 = (rec - x).abs().mean()
    ss = ssim(rec.float(), x.float())
    kl = dist.kl().mean() / dist.mean[0].numel()
    loss = l1 + ssim_weight * ss + kl_weight * kl
    return loss, {"l1": l1.item(), "ssim_loss": ss.item(), "kl": kl.item()}
