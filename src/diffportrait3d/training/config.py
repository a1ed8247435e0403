"""`dp3d train` configuration: one dataclass, loadable from YAML/JSON, every field overridable
on the command line (`--set lr=1e-4 --set batch_size=4` or the dedicated flags)."""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..preflight import check_range

# field -> (lowest, highest, whole number); None: unbounded
RANGES = dict(max_steps=(1, None, True), batch_size=(1, None, True), grad_accum=(1, None, True), views=(1, 32, True),
              lr=(0, 1, False), warmup_steps=(0, None, True), decay_steps=(0, None, True), weight_decay=(0, None, False), max_grad_norm=(0, None, False),
              ema_decay=(0, 1, False), seed=(0, None, True), resolution=(0, 4096, True), save_every=(1, None, True),
              keep_last=(0, None, True), sample_every=(0, None, True), sample_steps=(1, 1000, True), log_every=(1, None, True), val_every=(0, None, True), val_size=(1, 4096, True),
              snr_gamma=(0, None, False), snr_floor=(0, None, False), noise_offset=(0, None, False), max_minutes=(0, None, False),
              val_patience=(0, None, True), workers=(0, 64, True))
LR_SCHEDULES = ("constant", "cosine", "linear")


@dataclass
class TrainConfig:
    stage: str = "reference"          # a registered stage (training/stages/): vae base reference view consistency noise3d
    data: str = ""                    # EG3D-layout dataset folder
    model: str = ""                   # model folder to start from (base stage: optional)
    output: str = "train_out"         # checkpoints, logs, and the updated model folder (OUT/model)
    max_steps: int = 1000             # optimiser steps
    max_minutes: float = 0.0          # also stop (checkpoint, export) once this much wall time has passed; 0 = no limit
    batch_size: int = 16              # images per step (paper: 16); per process
    grad_accum: int = 1               # micro-batches per optimiser step (effective batch: batch_size x grad_accum x processes)
    views: int = 8                    # consistency stage: target views per group (paper: 8)
    lr: float = 1e-5                  # paper: 1e-5
    warmup_steps: int = 0             # linear warm-up (optimiser steps)
    lr_schedule: str = "constant"     # after warm-up: constant | cosine | linear (to 0 at max_steps)
    decay_steps: int = 0              # constant only: linear to 0 over the last this many steps (warm-up, stable, decay)
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    mixed_precision: str = ""         # no | fp16 | bf16 (autocast; fp16 with loss scaling); "": accelerate's config (default no)
    gradient_checkpointing: bool = False
    ema_decay: float = 0.0            # 0 disables EMA; else e.g. 0.999 (the EMA weights are exported)
    seed: int = 0                     # data order, per-sample noise (from seed, epoch, sample) and dataset draws
    workers: int = 2                  # DataLoader worker processes per training process (0: load in the training process)
    resolution: int = 0               # 0: the model's own image size
    save_every: int = 500             # checkpoint period (steps)
    keep_last: int = 3                # checkpoints kept
    sample_every: int = 500           # sample grid period (steps); 0 disables
    sample_steps: int = 20            # DDIM steps for sample grids
    log_every: int = 10
    condition_source: str = "render"  # view/consistency stages: render | folder | rig (data/eg3d_dataset.py)
    snr_gamma: float = 0.0            # Min-SNR loss weighting (e.g. 5); 0 = plain epsilon MSE
    snr_floor: float = 0.0            # below this SNR the loss is snr_floor x the x0 MSE (weights high noise); 0 = off
    noise_offset: float = 0.0         # diffusion stages: offset noise (training/noising.py), e.g. 0.1; 0 = plain noise
    val_data: str = ""                # held-out dataset for the validation losses ("": the first items of --data)
    val_every: int = 0                # validation period (steps): fixed batch, fixed t and noise, module on and off; 0 = off
    val_size: int = 16                # validation batch (timesteps spread evenly over 0..999)
    val_patience: int = 0             # > 0: stop once the validation gap (off - on) has not grown for this many validations
    cache_latents: bool = True        # latent stages: encode every view once (training/latent_cache.py)
    latent_cache: str = ""            # folder of those caches, shareable by stages with one VAE ("": OUT/cache)
    weights: str = ""                 # folder with optional perceptual-loss weights (noise3d)
    options: dict = field(default_factory=dict)  # the stage's typed Options (training/stages/*.py), e.g. {"preset": "mini"}

    def validate(self) -> "TrainConfig":
        from .stages import stage_class

        stage = stage_class(self.stage)
        stage.options(self.options)
        for name, (lo, hi, integer) in RANGES.items():
            check_range(name, getattr(self, name), lo, hi, integer)
        if self.lr == 0 or self.ema_decay == 1:
            raise UserError("lr 0 or ema_decay 1 would never change the weights; use lr > 0 and ema_decay < 1")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.decay_steps and (self.lr_schedule != "constant" or self.decay_steps > self.max_steps):
            raise UserError(f"decay_steps ({self.decay_steps}) needs lr_schedule constant (cosine and linear already "
                            f"decay) and at most max_steps ({self.max_steps})")
        if self.mixed_precision not in ("", "no", "fp16", "bf16"):
            raise UserError(f"mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}")
        if self.val_patience and not self.val_every:
            raise UserError("val_patience needs validation: set val_every (e.g. --set val_every=100)")
        if not self.data:
            raise UserError("--data DIR is required (an EG3D-layout dataset, e.g. from `dp3d synth`)")
        if stage.needs_model and not self.model:
            raise UserError(f"stage {self.stage} needs --model DIR (a model folder from `dp3d init` or an earlier stage)")
        return self


def load_config(path: str | None, overrides: dict) -> TrainConfig:
    values = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"config file not found: {p}")
        text = p.read_text()
        if p.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            values = json.loads(text)
    names = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for k, v in {**values, **{k: v for k, v in overrides.items() if v is not None}}.items():
        if k == "extra":  # the free-form dict of earlier versions
            raise UserError(f"training option 'extra' is now 'options' (the stage's typed options), e.g. --set options='{json.dumps(v)}'")
        if k not in names:
            raise UserError(f"unknown training option {k!r}; options: {', '.join(names)}")
        values[k] = v
    return TrainConfig(**values).validate()


def parse_override(text: str) -> tuple[str, object]:
    """`key=value` with value parsed as JSON when it can be (numbers, booleans, dicts)."""
    if "=" not in text:
        raise UserError(f"--set expects key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
