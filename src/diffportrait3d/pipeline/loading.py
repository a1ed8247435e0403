"""Load a DiffPortrait3D model folder (or hub id) with clear errors for what is missing."""

import json
import logging
from pathlib import Path

import torch

from ..errors import UserError

logger = logging.getLogger(__name__)

REQUIRED = ("unet", "reference_unet", "controlnet", "view_modules", "vae", "prompt_embedding", "scheduler")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA GPU is available here; use --device cpu")
    return torch.device(device)


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


def load_pipeline(model: str, device: str = "auto", dtype: str = "fp32"):
    """`model`: a model folder, a hub id, or the name of a shipped model ("mini")."""
    from .pipeline_diffportrait3d import DiffPortrait3DPipeline

    if dtype not in DTYPES:
        raise UserError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    dev = resolve_device(device)
    if dev.type == "cpu" and dtype == "fp16":
        raise UserError("fp16 on the CPU is not supported by torch's kernels; use --dtype fp32 or bf16 on the CPU")
    name = resolve_model(model)
    try:
        pipe = DiffPortrait3DPipeline.from_pretrained(name, dtype=DTYPES[dtype])
    except (OSError, ValueError) as e:
        if Path(name).exists():
            raise UserError(f"cannot load model folder {name}: {root_cause(e)}") from None
        raise UserError(f"cannot load {model!r} from the Hugging Face Hub ({root_cause(e)}); check the id and the "
                        "connection, or pass a local model folder") from None
    return pipe.to(dev)


def root_cause(e: BaseException) -> str:
    """The first line of the innermost exception: diffusers' outer message for a failed hub download
    only says to look at a stack trace that the CLI does not show."""
    while e.__cause__ is not None or (e.__context__ is not None and not e.__suppress_context__):
        e = e.__cause__ or e.__context__
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else 'no details'}"
