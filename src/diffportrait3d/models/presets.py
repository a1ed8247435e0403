"""Component configs: the `tiny` preset (random weights, for tests and development), the
`mini` preset (the miniature world's trained model, see scripts/train_miniature.sh) and the `sd15`
preset (Stable Diffusion 1.5's shapes with random weights, for speed and memory checks).

The tiny UNet mirrors SD1.5's shape at small width: attention at the first two levels, none at
the deepest, 2 layers per block, 4 heads (diffusers' `attention_head_dim` counts HEADS for
SD1.5-style UNets), 8x8 latents for 64x64 images.
"""

TINY_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 32, 32), layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32, attention_head_dim=4, norm_num_groups=32, use_linear_projection=False,
)

TINY_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 16, 32, 32), layers_per_block=1,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    norm_num_groups=8, sample_size=64, scaling_factor=0.18215,
)

# the released model's view modules: 8 heads, one transformer block, 32 views
VIEW_MODULES = dict(num_attention_heads=8, num_transformer_blocks=1, max_views=32)

# DDIM over the SD1.5 schedule, as the release samples (pipeline/schedule.py gives it the LDM alphas)
SCHEDULER = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading", prediction_type="epsilon",
)

# the miniature world: 64x64 renders, 16x16x8 latents (4 channels capped the VAE at 27 dB PSNR on
# renders; 8 reach 30+), ~16 MB in half precision. scaling_factor is a placeholder: the vae stage
# measures 1 / std of its latents and stores it (SD1.5's 0.18215 gave these latents std 0.39)
MINI_UNET = dict(
    sample_size=16, in_channels=8, out_channels=8, block_out_channels=(32, 64, 64), layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=64, attention_head_dim=4, norm_num_groups=16, use_linear_projection=False,
)

MINI_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(32, 64, 64), layers_per_block=1,
    down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
    norm_num_groups=16, sample_size=64, scaling_factor=0.18215,
)

# Stable Diffusion 1.5's shapes (512x512, 64x64x4 latents; its unet/ and vae/ config.json): random weights of the
# real size, for timing and memory checks without a download (benchmarks/gpu_check.py); a real model starts from
# SD1.5's weights (`dp3d init --base`)
SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",), up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32, use_linear_projection=False,
)

SD15_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    norm_num_groups=32, sample_size=512, scaling_factor=0.18215,
)

PRESETS = {"tiny": dict(unet=TINY_UNET, vae=TINY_VAE, prompt_length=77), "mini": dict(unet=MINI_UNET, vae=MINI_VAE, prompt_length=8),
           "sd15": dict(unet=SD15_UNET, vae=SD15_VAE, prompt_length=77)}
