"""`noise3d` stage: the 3D-aware noise model S on multi-view pairs (training/losses.py has the loss).

Starting point: `--model DIR` holding noise_model/ (continue) or a DiffPortrait3D model folder
(S is added to it); without --model a new S at `resolution` (default 64), shaped by the `model`
option. The exported folder is the model folder with noise_model/ in it, so `dp3d render --proxy
auto` uses it; without a model folder to add it to, OUT/model/noise_model/.
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...data.eg3d_dataset import PairDataset
from ...models.noise3d import NoiseModel3D
from ..datasets import Mapped, tensors_only
from ..losses import Noise3DLossConfig, noise3d_loss, perceptual_loss
from .base import Stage, register


@dataclass
class Noise3DOptions:
    l2_weight: float = 1.0                      # pixel MSE on [-1, 1] images
    perceptual_weight: float = 0.5              # times (1 - SSIM) or the VGG feature loss (see --set weights=DIR)
    model: dict = field(default_factory=dict)   # NoiseModel3D arguments of a new model, e.g. {"base_channels": 16}


@register
class Noise3DStage(Stage):
    name, Options, needs_model = "noise3d", Noise3DOptions, False

    def __init__(self, model: NoiseModel3D, pipe=None, weights_dir=None, loss_config: Noise3DLossConfig | None = None):
        super().__init__()
        self.model, self.pipe = model, pipe
        self.resolution = model.config.image_size
        self.perceptual = perceptual_loss(weights_dir)
        self.loss_config = loss_config or Noise3DLossConfig()
        model.train().requires_grad_(True)

    @classmethod
    def build(cls, cfg):
        o = cls.options(cfg.options)
        model_dir = Path(cfg.model) if cfg.model else None
        pipe = None
        if model_dir is not None and (model_dir / "model_index.json").is_file():
            from ...pipeline.loading import load_pipeline

            pipe = load_pipeline(str(model_dir), device="cpu")
        if model_dir is not None and (model_dir / "noise_model").is_dir():
            model = NoiseModel3D.from_pretrained(model_dir / "noise_model")
        else:
            size = cfg.resolution or (pipe.image_size if pipe is not None else 64)
            model = NoiseModel3D(image_size=size, **o.model)
        return cls(model, pipe, cfg.weights or None, Noise3DLossConfig(o.l2_weight, o.perceptual_weight))

    def dataset(self, cfg):
        return Mapped(PairDataset(cfg.data, res=cfg.resolution or self.resolution, condition_source="none", seed=cfg.seed), tensors_only)

    def trained(self):
        return self.model

    def forward(self, batch):
        loss, logs = noise3d_loss(self.model, batch, self.perceptual, self.loss_config)
        return loss, {k: v for k, v in logs.items() if isinstance(v, float)}

    @torch.no_grad()
    def samples(self, batch, steps):
        from ...media import tensor_to_pil

        n = min(8, batch["reference"].shape[0])
        pred = self.model(batch["reference"][:n], batch["reference_label"][:n], batch["target_label"][:n])
        return [[tensor_to_pil(x) for x in batch["reference"][:n]], [tensor_to_pil(x) for x in batch["target"][:n]],
                [tensor_to_pil(x) for x in pred]]

    def export(self, folder):
        self.model.register_to_config(training_loss=self.perceptual.name)
        if self.pipe is not None:
            self.pipe.register_modules(noise_model=self.model)
            self.pipe.save_pretrained(folder)
        else:
            self.model.save_pretrained(Path(folder) / "noise_model")
