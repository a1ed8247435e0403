"""Validation that shows learning: the stage's loss on a fixed batch with fixed timesteps and noise,
beside the same loss with the stage's module switched off.

A training loss is dominated by which samples, timesteps and noise each step draws: its curve can be
flat while the weights learn (docs/lab/2026-12-03-take-four.md). Here every term is fixed: the same items (spread
over the validation set, encoded by the VAE rather than read from the latent cache, so any folder
works), one timestep per item spread evenly over 0..999, noise from fixed per-item seeds. So the
curve moves only when the weights do, and `val_off - val_loss` is what the module has learned
(stages with `switchable = True`: reference, view, consistency, and base trained with reference_prob).
"""

from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import default_collate

# keys that index the training set's latent cache: dropped so that validation items are encoded
_VIEW_KEYS = ("view", "reference_view", "target_view", "target_views")
VAL_SEED = 1_000_003  # per-item noise seeds are VAL_SEED + i, disjoint from training's (seed, epoch, index) draws


def validation_batch(stage, cfg, data=None) -> dict:
    """`cfg.val_size` items of `data` (default: the stage's dataset of `cfg.val_data`, else of the
    training set), evenly spread, with fixed per-item seeds and timesteps."""
    data = data if data is not None else stage.dataset(replace(cfg, data=cfg.val_data or cfg.data))
    if hasattr(data, "set_epoch"):
        data.set_epoch(0)
    n = min(cfg.val_size, len(data))
    items = []
    for i, j in enumerate(np.linspace(0, len(data) - 1, n).round().astype(int)):
        item = {k: v for k, v in data[int(j)].items() if k not in _VIEW_KEYS}
        item["seed"] = VAL_SEED + i
        item["timestep"] = int(round(999 * i / max(n - 1, 1)))
        items.append(item)
    return default_collate(items)


@torch.no_grad()
def validate(stage, batch: dict, off: float | None = None) -> dict:
    """{"val_loss": ..., "val_off": ...} (val_off only for switchable stages); weights unchanged. `off`: val_off
    from an earlier call, reused by stages whose off step runs frozen weights only (`off_fixed`; half the cost)."""
    was_training = stage.trained().training
    stage.trained().eval()
    try:
        with stage.context():
            if stage.switchable:
                if off is None or not stage.off_fixed:
                    off = stage(batch, off=True)[0].item()
                out = {"val_loss": stage(batch, off=False)[0].item(), "val_off": off}
            else:
                out = {"val_loss": stage(batch)[0].item()}
    finally:
        stage.trained().train(was_training)
    return out


def gap_stalled(rows: list[dict], patience: int) -> bool:
    """Whether the last `patience` validations (rows of val.csv, oldest first) all fell short of the best
    gap before them: what the module has learned (val_off - val_loss) stopped growing. Stages without an
    off switch use the loss itself (its fall). Read from the log, so a resumed run counts the same."""
    gaps = [float(r["val_off"]) - float(r["val_loss"]) if r.get("val_off") not in (None, "") else -float(r["val_loss"])
            for r in rows]
    return len(gaps) > patience and max(gaps[-patience:]) <= max(gaps[:-patience])
