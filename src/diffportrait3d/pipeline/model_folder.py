"""Which model folder a name stands for, checked: a shipped model ("mini"), a local folder, or a hub id.

Apart from loading.py (which picks device and dtype) because the pipeline's own from_pretrained
resolves names here too, and loading imports the pipeline.
"""

import json
from pathlib import Path

from ..errors import UserError

REQUIRED = ("unet", "reference_unet", "controlnet", "view_modules", "vae", "prompt_embedding", "scheduler")


def check_model_folder(path: Path) -> None:
    """Every component model_index.json lists has its config and weights; name the first that does not."""
    index = path / "model_index.json"
    if not index.is_file():
        raise UserError(f"{path} is not a DiffPortrait3D model folder (no model_index.json); make one with "
                        "`dp3d init` or `dp3d convert-official`")
    try:
        entries = json.loads(index.read_text())
    except json.JSONDecodeError:
        raise UserError(f"{index} is not valid JSON; restore it from a copy or re-create the model folder") from None
    if entries.get("turbo") is not None:  # a distilled folder's sampling entry: a bad one fails before any weights load
        from .turbo import TurboConfig

        TurboConfig.from_config(entries["turbo"])
    missing = [c for c in REQUIRED if not isinstance(entries.get(c), list) or not (path / c).is_dir()]
    if missing:
        raise UserError(f"model folder {path} lacks {', '.join(missing)}; re-create it with `dp3d init` or `dp3d convert-official`")
    listed = [k for k, v in entries.items() if not k.startswith("_") and isinstance(v, list) and None not in v]
    for name in listed:
        sub = path / name
        fix = f"copy {name}/ back from where the model came from, or re-create the model folder"
        if name not in REQUIRED:  # optional (noise_model): it can be switched off instead
            fix += f', or set "{name}": [null, null] in model_index.json to load without it'
        config = sub / ("scheduler_config.json" if entries[name][1].endswith("Scheduler") else "config.json")
        if not config.is_file():
            raise UserError(f"model folder {path}: {config.relative_to(path)} is missing; {fix}")
        if config.name == "config.json" and not any(f.suffix in (".safetensors", ".bin") or f.name.endswith(".index.json")
                                                     for f in sub.iterdir()):
            raise UserError(f"model folder {path}: {name}/diffusion_pytorch_model.safetensors is missing; {fix}")


SHIPPED = {"mini": Path(__file__).resolve().parent.parent / "weights" / "mini"}


def resolve_model(model: str | Path) -> str:
    """A name `--model` accepts -> what diffusers loads: a shipped model's folder (checked), a
    checked local folder, or a hub id (owner/name) left for the Hub."""
    model = str(model)
    if model in SHIPPED:
        if not (SHIPPED[model] / "model_index.json").is_file():
            raise UserError(f"the {model} model is not in this installation ({SHIPPED[model]}); "
                            "train it with scripts/train_miniature.sh or pass --model DIR")
        model = str(SHIPPED[model])
    path = Path(model).expanduser()
    if path.exists():
        check_model_folder(path)
        return str(path)
    if path.is_absolute() or model.startswith((".", "~")) or model.count("/") != 1:
        raise UserError(f"model folder not found: {model} (pass a model folder, a hub id owner/name, or one of: {', '.join(SHIPPED)})")
    return model


def read_model_index(model: str) -> dict:
    """A model's model_index.json entries without loading its weights (its per-model defaults: noise_mean,
    condition_seed, colour_pull); {} for a hub id, whose index is read only when the model loads."""
    path = Path(resolve_model(model))
    return json.loads((path / "model_index.json").read_text()) if path.is_dir() else {}
