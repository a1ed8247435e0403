"""Training checkpoints: complete (trained weights, optimiser, lr schedule, EMA, fp16 loss scale,
RNG, step, config), atomic per file with meta.json written last, loadable with weights_only=True, keep-last-N."""

import contextlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..atomic import atomic_folder, atomic_path
from ..errors import UserError

PREFIX = "step-"
FILES = ("meta.json", "trainable.safetensors", "state.pt")  # all a checkpoint holds (meta.json: written last, removed first)


def save_checkpoint(root: Path, step: int, module, optimizer, scheduler, ema=None, config: dict | None = None, keep_last: int = 3,
                    scaler=None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:08d}"
    with atomic_folder(final) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}, tmp / "trainable.safetensors")
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "ema": ema.state_dict() if ema is not None else None, "torch_rng": torch.get_rng_state(),
                    "scaler": scaler.state_dict() if scaler is not None else None}, tmp / "state.pt")
    with atomic_path(final / "meta.json") as tmp:  # list_checkpoints counts only folders with meta.json
        tmp.write_text(json.dumps({"step": step, "config": config or {}}, indent=1))
    for old in list_checkpoints(root)[:-keep_last] if keep_last > 0 else []:
        for name in FILES:  # only ours: other files someone put there stay, and so does the folder
            (old / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            old.rmdir()
    return final


def list_checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / "meta.json").is_file())


def load_checkpoint(path: Path, module, optimizer, scheduler, ema=None, scaler=None) -> int:
    """Restore everything in place; returns the step the checkpoint was taken at."""
    try:
        weights = load_file(path / "trainable.safetensors")
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, RuntimeError, ValueError) as e:
        raise UserError(f"checkpoint {path} is unreadable ({e.__class__.__name__}); delete it to resume from the one before") from None
    missing, unexpected = module.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise UserError(f"checkpoint {path} does not fit this stage's model ({len(missing)} missing, {len(unexpected)} unexpected keys, "
                        f"e.g. {(missing + unexpected)[0]})")
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if ema is not None and state.get("ema") is not None:
        ema.load_state_dict(state["ema"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])
    return int(meta["step"])
