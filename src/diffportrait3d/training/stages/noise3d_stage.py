"""`noise3d` stage: the 3D-aware noise model S on multi-view pairs (training/noise3d.py has the loss).

Starting point: `--model DIR` holding noise_model/ (continue) or a DiffPortrait3D model folder
(S is added to it); without --model a new S at `resolution` (default 64). The exported folder is
the model folder with noise_model/ in it, so `dp3d render --proxy auto` uses it.
"""

from pathlib import Path

import torch

from ...models.noise3d import NoiseModel3D
from ..noise3d import Noise3DLossConfig, noise3d_loss, perceptual_loss
from .base import Stage


class Noise3DStage(Stage):
    name, batch_kind = "noise3d", "camera_pairs"

    def __init__(self, model: NoiseModel3D, pipe=None, weights_dir=None, loss_config: Noise3DLossConfig | None = None):
        self.model, self.pipe = model, pipe
        self.resolution = model.config.image_size
        self.perceptual = perceptual_loss(weights_dir)
        self.loss_config = loss_config or Noise3DLossConfig()
        model.train().requires_grad_(True)

    def trainable(self):
        return self.model

    def loss(self, batch, generator):
        dev = next(self.model.parameters()).device
        batch = {k: v.to(dev) for k, v in batch.items() if isinstance(v, torch.Tensor)}
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


def build_noise3d_stage(cfg) -> Noise3DStage:
    model_dir = Path(cfg.model) if cfg.model else None
    pipe = None
    if model_dir is not None and (model_dir / "model_index.json").is_file():
        from ...pipeline.loading import load_pipeline

        pipe = load_pipeline(str(model_dir), device="cpu")
    if model_dir is not None and (model_dir / "noise_model").is_dir():
        model = NoiseModel3D.from_pretrained(model_dir / "noise_model")
    else:
        size = cfg.resolution or (pipe.image_size if pipe is not None else 64)
        model = NoiseModel3D(image_size=size, **cfg.extra.get("noise3d", {}))
    return Noise3DStage(model, pipe, cfg.weights or None)
