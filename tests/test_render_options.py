"""Render options users pick on the command line: `--dtype` (half precision against fp32 on the same
seed) and `--proxy FOLDER` (the user's proxy images set the 3D-aware start)."""

import numpy as np
import pytest
import torch
from PIL import Image

from diffportrait3d.cli.main import main
from diffportrait3d.errors import UserError
from diffportrait3d.media import image_to_tensor
from diffportrait3d.pipeline.loading import load_pipeline
from diffportrait3d.pipeline.schedule import q_sample

from cli_checks import run_bad


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


@pytest.fixture()
def user(tmp_path):
    """A reference, two condition images, and a folder of two proxy images (file names out of creation order)."""
    images(1, 100)[0].save(tmp_path / "ref.png")
    (tmp_path / "conds").mkdir()
    for i, im in enumerate(images(2, 1)):
        im.save(tmp_path / "conds" / f"{i}.png")
    (tmp_path / "proxies").mkdir()
    for name, im in zip(("view_b.png", "view_a.png"), images(2, 7)):
        im.save(tmp_path / "proxies" / name)
    return tmp_path


def initial_latents(monkeypatch, args):
    """x_T of a `dp3d render` run: what the pipeline hands its denoising loop."""
    import diffportrait3d.pipeline.pipeline_diffportrait3d as module

    seen, denoise = [], module.denoise

    def spy(eps_fn, latents, *a, **kw):
        seen.append(latents.clone())
        return denoise(eps_fn, latents, *a, **kw)

    monkeypatch.setattr(module, "denoise", spy)
    assert main([str(a) for a in args]) == 0
    assert len(seen) == 1
    return seen[0]


def test_proxy_folder_sets_the_3d_aware_start(user, tiny_pipe, tiny_model_dir, monkeypatch, tmp_path):
    """`--proxy FOLDER`: x_T = q_sample(E(proxy), noise, 999) with the folder's images in file-name order
    and the seed's first draw as noise; `--proxy none`: x_T = that noise alone."""
    base = ["render", user / "ref.png", "--model", tiny_model_dir, "--conditions", user / "conds", "--steps", "1"]
    x_proxy = initial_latents(monkeypatch, base + ["--proxy", user / "proxies", "-o", tmp_path / "a"])
    x_none = initial_latents(monkeypatch, base + ["--proxy", "none", "-o", tmp_path / "b"])
    noise = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    files = sorted((user / "proxies").iterdir())
    with torch.no_grad():
        z = tiny_pipe.encode(torch.stack([image_to_tensor(Image.open(f).convert("RGB"), 64) for f in files]))
    want = q_sample(z, noise, tiny_pipe.alphas_cumprod, 999)
    assert (x_proxy - want).abs().max().item() < 1e-5
    swapped = q_sample(z.flip(0), noise, tiny_pipe.alphas_cumprod, 999)
    assert (x_proxy - swapped).abs().max().item() > 1e-3  # the order matters, so the check above sees it
    assert torch.equal(x_none, noise)


def test_bad_proxy_folders_exit_2_before_the_model_loads(user, tmp_path, capsys):
    (tmp_path / "three").mkdir()
    for i, im in enumerate(images(3, 7)):
        im.save(tmp_path / "three" / f"{i}.png")
    (tmp_path / "empty").mkdir()
    r = ["render", user / "ref.png", "--model", "/nonexistent/model", "--conditions", user / "conds", "-o", tmp_path / "out"]
    run_bad(capsys, r + ["--proxy", tmp_path / "nowhere"], "--proxy", "not found")
    run_bad(capsys, r + ["--proxy", tmp_path / "three"], "--proxy", "3 proxy images for 2 views")
    run_bad(capsys, r + ["--proxy", tmp_path / "empty"], "--proxy", "no images")
    rendered = ["render", user / "ref.png", "--model", "/nonexistent/model", "--views", "4", "-o", tmp_path / "out"]
    run_bad(capsys, rendered + ["--proxy", user / "proxies"], "--proxy", "2 proxy images for 4 views")
    assert not (tmp_path / "out").exists()
