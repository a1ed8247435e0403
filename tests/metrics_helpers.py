"""Shared helpers for the metrics tests: real face photos shipped in PyPI wheels, fake weight folders."""

import dataclasses
from pathlib import Path

import numpy as np
import torch

from diffportrait3d.metrics import weights


def astronaut() -> np.ndarray:
    """scikit-image's astronaut (Eileen Collins), uint8 (512, 512, 3)."""
    import skimage.data

    return skimage.data.astronaut()


def grace_hopper() -> np.ndarray:
    """matplotlib's sample photo of Grace Hopper, uint8 (600, 512, 3)."""
    import matplotlib
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return np.asarray(Image.open(path).convert("RGB"))


def unverified(monkeypatch, *keys):
    """Drop the recorded sha256 of registry entries so fake files load in tests."""
    for k in keys:
        monkeypatch.setitem(weights.REGISTRY, k, dataclasses.replace(weights.REGISTRY[k], sha256=None))


def save_torchvision_like(path: Path, features: torch.nn.Sequential, seed: int = 0) -> dict:
    """Write a torchvision-style classifier checkpoint (features.N.* + a classifier) with random weights."""
    torch.manual_seed(seed)
    sd = {f"features.{k}": torch.randn_like(v) * 0.05 for k, v in features.state_dict().items()}
    sd["classifier.1.weight"] = torch.zeros(4, 4)
    torch.save(sd, path)
    return sd
