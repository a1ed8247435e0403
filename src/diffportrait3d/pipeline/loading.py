"""Load a DiffPortrait3D pipeline on a device and dtype, with clear errors (which folder: model_folder.py)."""

import logging
from pathlib import Path

import torch

from ..errors import UserError
from .model_folder import resolve_model

logger = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA GPU is available here; use --device cpu")
    return torch.device(device)


def load_pipeline(model: str, device: str = "auto", dtype: str = "fp32"):
    """`model`: a model folder, a hub id, or the name of a shipped model ("mini")."""
    from .pipeline_diffportrait3d import DiffPortrait3DPipeline  # here: `dp3d lift` takes resolve_device without diffusers

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
