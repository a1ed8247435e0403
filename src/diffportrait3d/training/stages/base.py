"""What every training stage is: one nn.Module holding everything its step runs, whose forward
returns the loss, so accelerate's `prepare` (DDP, FSDP, DeepSpeed) wraps every trained parameter,
including view modules that run inside the frozen backbone through hooks.

A stage owns its typed options (`Options`, a dataclass set with `--set options='{...}'`), its
dataset, its loss and its export. Stages register themselves by name with `@register`; every
module in this package is imported by `stages/__init__.py`, so a new stage is one new file.
"""

import contextlib
from dataclasses import dataclass, fields

import torch
from torch import nn

from ...errors import UserError

REGISTRY: dict[str, type["Stage"]] = {}


def register(cls):
    REGISTRY[cls.name] = cls
    return cls


@dataclass
class NoOptions:
    pass


class Stage(nn.Module):
    """Subclasses set `name`, `Options`, and implement `build`, `dataset`, `trained`, `forward`, `export`."""

    name = ""
    Options = NoOptions
    needs_model = True  # --model is required
    resolution = 64     # image side the dataset is read at
    latents = None      # a LatentCache (training/latent_cache.py) for stages with a `latent_vae`
    switchable = False  # forward(batch, off=True) runs the step with the trained module switched off
    off_fixed = False   # that off step runs only frozen weights: validation computes its loss once, not every time

    @classmethod
    def options(cls, values: dict):
        """The stage's Options from a dict, naming unknown keys instead of ignoring them."""
        names = [f.name for f in fields(cls.Options)]
        if not isinstance(values, dict):
            raise UserError(f"options must be a JSON object such as '{{\"{names[0] if names else 'key'}\": ...}}', got {values!r}")
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise UserError(f"stage {cls.name} has no option {', '.join(unknown)}; its options: {', '.join(names) or 'none'}")
        return cls.Options(**values)

    @classmethod
    def build(cls, cfg) -> "Stage":
        """The stage a TrainConfig describes, loading what it starts from."""
        raise NotImplementedError

    def dataset(self, cfg) -> torch.utils.data.Dataset:
        """Items for `forward` (tensors only, so they collate); `view`-like index keys feed the latent cache."""
        raise NotImplementedError

    def trained(self) -> nn.Module:
        """The submodule whose weights this stage trains (checkpointed, EMA'd)."""
        raise NotImplementedError

    def trained_parameters(self) -> list[nn.Parameter]:
        """The parameters handed to the optimiser (those that can influence the loss)."""
        return [p for p in self.trained().parameters() if p.requires_grad]

    def param_groups(self) -> list[dict]:
        """The optimiser's parameter groups (the same parameters as `trained_parameters`); a group
        may set its own "lr", scaled by the schedule like the rest."""
        return [{"params": self.trained_parameters()}]

    def frozen(self) -> list[nn.Module]:
        """Modules used but not trained; the tests check that they stay bitwise unchanged."""
        return []

    def context(self):
        """Entered around forward AND backward (recomputation under gradient checkpointing)."""
        return contextlib.nullcontext()

    def after_step(self) -> None:
        """Called once after every optimiser step (e.g. to move a target network); nothing by default."""

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """(loss, logs of floats) of one batch; randomness from `generators(batch)` only."""
        raise NotImplementedError

    @torch.no_grad()
    def samples(self, batch: dict, steps: int) -> list[list]:
        """Rows of PIL images for the sample grid."""
        return []

    def export(self, folder) -> None:
        raise NotImplementedError


def check_option(name: str, value: float, lo: float, hi: float = float("inf"), lo_open: bool = False) -> None:
    """A stage option within [lo, hi] ((lo, hi] with lo_open), else a one-line UserError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"option {name} must be a number, got {value!r}")
    if not (lo < value if lo_open else lo <= value) or value > hi:
        bound = f"{'>' if lo_open else '>='} {lo:g}" + (f" and <= {hi:g}" if hi != float("inf") else "")
        raise UserError(f"option {name} must be {bound}, got {value!r}")


def check_flag(name: str, value) -> None:
    """A stage option that must be true or false (JSON's, not 0/1 or "yes"), else a one-line UserError naming it."""
    if not isinstance(value, bool):
        raise UserError(f"option {name} must be true or false, got {value!r}")


def generators(batch: dict, repeat: int = 1) -> list[torch.Generator]:
    """One generator per sample from the per-sample seeds the loop adds (training/loop.py: SeededItems),
    each repeated `repeat` times (one per row of a sample's views). A sample's noise and timestep then
    do not depend on which batch, micro-batch or process it lands in."""
    return [g for s in batch["seed"].tolist() for g in [torch.Generator().manual_seed(int(s))] * repeat]


def freeze(*modules):
    for m in modules:
        m.requires_grad_(False)
        m.eval()
