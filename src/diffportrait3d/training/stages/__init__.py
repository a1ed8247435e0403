"""The stage registry: every module of this package is imported once, and each registers its
stages by name (`@register` in stages/base.py). Adding a stage is adding one file here."""

import importlib
import pkgutil

import torch

from ...errors import UserError
from .base import REGISTRY, Stage


def _discover() -> dict[str, type[Stage]]:
    for m in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{m.name}")  # cached after the first time
    return REGISTRY


def stage_class(name: str) -> type[Stage]:
    stages = _discover()
    if name not in stages:
        raise UserError(f"--stage must be one of {', '.join(stages)}, got {name!r}")
    return stages[name]


def build_stage(cfg) -> Stage:
    """The stage a TrainConfig names, loading what it starts from. Weights that start fresh (a preset's
    VAE, UNet or noise model) are drawn from the run's seed: a rerun of a recipe trains the same model."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return stage_class(cfg.stage).build(cfg)
