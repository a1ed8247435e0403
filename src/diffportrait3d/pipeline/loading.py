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
    index = path / "model_index.json"
    if not index.is_file():
        raise UserError(f"{path} is not a DiffPortrait3D model folder (no model_index.json); make one with "
                        "`dp3d init` or `dp3d convert-official`")
    try:
        entries = json.loads(index.read_text())
    except json.JSONDecodeError:
        raise UserError(f"{index} is not valid JSON") from None
    missing = [c for c in REQUIRED if c not in entries or not (path / c).is_dir()]
    if missing:
        raise UserError(f"model folder {path} lacks {', '.join(missing)}; re-create it with `dp3d init` or `dp3d convert-official`")


SHIPPED = {"mini": Path(__file__).resolve().parent.parent / "weights" / "mini"}


def load_pipeline(model: str, device: str = "auto", dtype: str = "fp32"):
    """`model`: a model folder, a hub id, or the name of a shipped model ("mini")."""
    from .pipeline_diffportrait3d import DiffPortrait3DPipeline

    if model in SHIPPED:
        if not (SHIPPED[model] / "model_index.json").is_file():
            raise UserError(f"the {model} model is not in this installation ({SHIPPED[model]}); "
                            "train it with scripts/train_miniature.sh or pass --model DIR")
        model = str(SHIPPED[model])
    if dtype not in DTYPES:
        raise UserError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    dev = resolve_device(device)
    if dev.type == "cpu" and dtype == "fp16":
        raise UserError("fp16 on the CPU is not supported by torch's kernels; use --dtype fp32 or bf16 on the CPU")
    path = Path(model)
    if path.exists():
        check_model_folder(path)
    elif Path(model).is_absolute() or model.startswith((".", "~")) or model.count("/") != 1:
        raise UserError(f"model folder not found: {model}")
    try:
        pipe = DiffPortrait3DPipeline.from_pretrained(model, dtype=DTYPES[dtype])
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load model {model!r}: {str(e).splitlines()[0]}") from None
    return pipe.to(dev)
