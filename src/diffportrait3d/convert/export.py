"""Write a converted checkpoint as a model folder, taking what the file lacks from an SD1.5 base."""

import logging
from pathlib import Path

from ..atomic import atomic_folder
from ..errors import UserError
from ..pipeline.loading import DTYPES
from ..preflight import check_output_folder
from .official import build_components, load_checkpoint

logger = logging.getLogger(__name__)


def _prompt_embeds(text_encoder_sd, base):
    """The empty prompt's CLIP embedding: text encoder from the checkpoint or the base, tokenizer from the base."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from ..pipeline.build import empty_prompt_embedding

    if base is None:
        raise UserError("the empty-prompt embedding needs a tokenizer (and a text encoder if the checkpoint has none): pass --base SD15")
    tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
    if text_encoder_sd:
        encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(base, subfolder="text_encoder"))
        missing, unexpected = encoder.load_state_dict(text_encoder_sd, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing:
            raise UserError(f"the checkpoint's text encoder lacks {len(missing)} weights (e.g. {missing[0]}) for the base's config")
    else:
        encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder")
    return empty_prompt_embedding(encoder.eval(), tokenizer)


def convert_to_folder(checkpoint, output, base=None, original_config=None, dtype="fp32"):
    from diffusers import AutoencoderKL, DDIMScheduler

    from ..models.presets import SCHEDULER
    from ..models.prompt_embedding import PromptEmbedding
    from ..pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline

    # the model folder takes about the checkpoint's size (half of it in fp16/bf16)
    size = Path(checkpoint).stat().st_size if Path(checkpoint).is_file() else 0
    check_output_folder(output, need_bytes=size // (1 if dtype == "fp32" else 2))
    sd = load_checkpoint(checkpoint)
    nets, cfg, report, text_sd = build_components(sd, original_config)
    del sd  # the converted modules now own the weights
    if "vae" not in nets:
        if base is None:
            raise UserError("the checkpoint has no VAE (first_stage_model.*): pass --base SD15 to take it from Stable Diffusion 1.5")
        nets["vae"] = AutoencoderKL.from_pretrained(base, subfolder="vae")
    embeds = _prompt_embeds(text_sd, base)
    sched = DDIMScheduler(**dict(SCHEDULER, **cfg["schedule"]))
    pipe = DiffPortrait3DPipeline(prompt_embedding=PromptEmbedding.from_tensor(embeds), scheduler=sched, **nets)
    pipe.to(dtype=DTYPES[dtype])
    with atomic_folder(output) as tmp:
        pipe.save_pretrained(tmp)
        (tmp / "conversion_report.txt").write_text(report.summary() + "\n")
    for note in report.notes:
        logger.warning(note)
    return report
