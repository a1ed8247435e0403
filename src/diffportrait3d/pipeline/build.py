"""Assemble a DiffPortrait3D model folder: from a Stable Diffusion 1.5 base or from a preset.

As the paper does, the reference UNet and the view ControlNet start as copies of the backbone,
and the view modules start as identities (zero output projections).
"""

import copy
import logging

import torch
from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel

from ..errors import UserError
from ..models.presets import PRESETS, SCHEDULER, VIEW_MODULES
from ..models.prompt_embedding import PromptEmbedding
from ..models.view_modules import ViewModules

logger = logging.getLogger(__name__)


def view_modules_for(unet: UNet2DConditionModel) -> ViewModules:
    c = unet.config
    return ViewModules(block_out_channels=tuple(c.block_out_channels), layers_per_block=c.layers_per_block,
                       norm_num_groups=c.norm_num_groups, **VIEW_MODULES)


def components_from_backbone(unet, vae, prompt_embeds: torch.Tensor, scheduler=None) -> dict:
    """Everything a DiffPortrait3DPipeline needs, derived from a backbone UNet and a VAE."""
    reference_unet = copy.deepcopy(unet)
    # the hint encoder halves the condition image once per step until latent size (SD1.5: /8, 3 steps)
    steps = len(vae.config.block_out_channels) - 1
    hint_channels = (16, 32, 96, 256, 256, 256)[: steps + 1]
    controlnet = ControlNetModel.from_unet(unet, conditioning_channels=3, conditioning_embedding_out_channels=hint_channels)
    return dict(vae=vae, unet=unet, reference_unet=reference_unet, controlnet=controlnet,
                view_modules=view_modules_for(unet), prompt_embedding=PromptEmbedding.from_tensor(prompt_embeds),
                scheduler=scheduler or DDIMScheduler(**SCHEDULER))


def preset_components(name: str, seed: int = 0) -> dict:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    p = PRESETS[name]
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**p["unet"])
    vae = AutoencoderKL(**p["vae"])
    embeds = torch.randn(1, p["prompt_length"], p["unet"]["cross_attention_dim"])
    return components_from_backbone(unet, vae, embeds)


@torch.no_grad()
def empty_prompt_embedding(text_encoder, tokenizer) -> torch.Tensor:
    ids = tokenizer([""], padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt").input_ids
    return text_encoder(ids)[0].float()


def sd15_components(base: str, **load_kwargs) -> dict:
    """Components from a Stable Diffusion 1.5 folder (diffusers layout) or hub id. A miniature base
    (from `dp3d train --stage base`) carries prompt_embedding/ instead of a text encoder."""
    from pathlib import Path

    from transformers import CLIPTextModel, CLIPTokenizer

    try:
        unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet", **load_kwargs)
        vae = AutoencoderKL.from_pretrained(base, subfolder="vae", **load_kwargs)
        if (Path(base) / "prompt_embedding").is_dir():
            embeds = PromptEmbedding.from_pretrained(base, subfolder="prompt_embedding").embeds.data
        else:
            tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer", **load_kwargs)
            text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder", **load_kwargs)
            embeds = empty_prompt_embedding(text_encoder, tokenizer)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load a Stable Diffusion base from {base!r}: it needs unet/, vae/, tokenizer/ and "
                        f"text_encoder/ in diffusers layout ({str(e).splitlines()[0]})") from None
    return components_from_backbone(unet, vae, embeds)
