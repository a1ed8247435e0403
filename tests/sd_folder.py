"""A tiny Stable-Diffusion-layout folder (unet, vae, text_encoder, tokenizer, scheduler), built here:
the same loading code path as the real SD1.5, with nothing downloaded."""

import json

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from diffportrait3d.models.presets import SCHEDULER, TINY_UNET, TINY_VAE


def write_tiny_tokenizer(path):
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {t: i for i, t in enumerate(letters + [c + "</w>" for c in letters] + ["<|startoftext|>", "<|endoftext|>"])}
    CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77).save_pretrained(path)
    return len(vocab)


def make_tiny_sd(root, seed=0):
    torch.manual_seed(seed)
    UNet2DConditionModel(**TINY_UNET).save_pretrained(root / "unet")
    AutoencoderKL(**TINY_VAE).save_pretrained(root / "vae")
    n = write_tiny_tokenizer(root / "tokenizer")
    cfg = CLIPTextConfig(vocab_size=n, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=77, bos_token_id=n - 2, eos_token_id=n - 1)
    CLIPTextModel(cfg).save_pretrained(root / "text_encoder")
    DDIMScheduler(**SCHEDULER).save_pretrained(root / "scheduler")
    (root / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return root
