"""Render options users pick on the command line: `--dtype` (half precision against fp32 on the same
seed)."""

import numpy as np
import pytest
import torch
from PIL import Image

from diffportrait3d.errors import UserError
from diffportrait3d.pipeline.loading import load_pipeline


def images(n, seed=0, size=64):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def run(pipe):
    return pipe(images(1, 100), images(2, 1), num_inference_steps=2, proxy_images=None, output_type="pt",
                generator=torch.Generator().manual_seed(0))


# measured on the tiny model, 2 views, 2 DDIM steps, seed 0 (CPU): bf16 images 0.044 max (in [0, 1]),
# latents 0.084 of fp32's std; the bounds are about 3x that. fp16 (GPU only, not measured here) keeps 3 more
# mantissa bits than bf16, so the bf16 bounds hold it too
BOUNDS = {"bf16": (0.13, 0.25), "fp16": (0.13, 0.25)}


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_half_precision_stays_near_fp32(tiny_model_dir, dtype):
    """`--dtype` through load_pipeline: the same seed gives images within the bound of fp32, and not the
    same numbers (the networks really ran in half precision)."""
    device = "cpu"
    if dtype == "fp16":
        if not torch.cuda.is_available():
            with pytest.raises(UserError, match="fp16 on the CPU is not supported"):
                load_pipeline(str(tiny_model_dir), "cpu", "fp16")
            pytest.skip("fp16 inference needs a GPU (load_pipeline refuses fp16 on the CPU; checked above)")
        device = "cuda"
    full = load_pipeline(str(tiny_model_dir), device, "fp32")
    half = load_pipeline(str(tiny_model_dir), device, dtype)
    for p in (full, half):
        p.set_progress_bar_config(disable=True)
    assert half.unet.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    a, b = run(full), run(half)
    image_diff = (a.images - b.images).abs().max().item()
    latent_diff = ((a.latents - b.latents.float()).abs().max() / a.latents.std()).item()
    print(f"{dtype}: images {image_diff:.3g} max, latents {latent_diff:.3g} of std")
    image_bound, latent_bound = BOUNDS[dtype]
    assert 0 < image_diff < image_bound and 0 < latent_diff < latent_bound, (image_diff, latent_diff)
