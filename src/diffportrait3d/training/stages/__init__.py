"""Build the stage a TrainConfig names, loading what it starts from."""

from pathlib import Path

from ...errors import UserError


def build_stage(cfg):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from ...models.presets import PRESETS
    from ...models.prompt_embedding import PromptEmbedding
    from .base_models import BaseUNetStage, VAEStage

    model = Path(cfg.model) if cfg.model else None
    preset = PRESETS[cfg.extra.get("preset", "tiny")]
    if cfg.stage == "vae":
        vae = AutoencoderKL.from_pretrained(model / "vae") if model and (model / "vae").is_dir() else AutoencoderKL(**preset["vae"])
        return VAEStage(vae, **{k: cfg.extra[k] for k in ("kl_weight", "ssim_weight", "per_channel_latents") if k in cfg.extra})
    if cfg.stage == "base":
        if model is None or not (model / "vae").is_dir():
            raise UserError("stage base needs --model DIR holding a trained vae/ (the output of --stage vae)")
        vae = AutoencoderKL.from_pretrained(model / "vae")
        if (model / "unet").is_dir():
            unet = UNet2DConditionModel.from_pretrained(model / "unet")
            prompt = PromptEmbedding.from_pretrained(model / "prompt_embedding")
        else:
            import torch

            unet = UNet2DConditionModel(**preset["unet"])
            g = torch.Generator().manual_seed(cfg.seed)
            prompt = PromptEmbedding.from_tensor(torch.randn(1, preset["prompt_length"], unet.config.cross_attention_dim, generator=g))
        return BaseUNetStage(unet, vae, prompt, snr_gamma=cfg.snr_gamma)
    if cfg.stage == "noise3d":
        from .noise3d_stage import build_noise3d_stage

        return build_noise3d_stage(cfg)
    from ...pipeline.loading import load_pipeline
    from .diffportrait3d import DiffPortrait3DStage

    pipe = load_pipeline(cfg.model, device="cpu")
    return DiffPortrait3DStage(cfg.stage, pipe, views=cfg.views, gradient_checkpointing=cfg.gradient_checkpointing,
                               snr_gamma=cfg.snr_gamma)
