"""The pipeline end to end on the tiny preset: reproducibility, save/load, 3D-aware start, errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from diffportrait3d.errors import UserError
from diffportrait3d.media import image_to_tensor
from diffportrait3d.pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline

from sd_folder import make_tiny_sd


def images(n, seed=0, size=64):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def run(pipe, seed=0, n=3, **kw):
    kw.setdefault("num_inference_steps", 3)
    kw.setdefault("output_type", "pt")
    return pipe(images(1, 100), images(n, 1), generator=torch.Generator().manual_seed(seed), **kw)


def test_same_seed_same_output_and_seed_matters(tiny_pipe):
    a, b, c = run(tiny_pipe, 0).images, run(tiny_pipe, 0).images, run(tiny_pipe, 1).images
    assert torch.equal(a, b)
    assert (a - c).abs().max().item() > 1e-2
    assert a.shape == (3, 3, 64, 64) and 0 <= a.min() and a.max() <= 1


def test_save_load_round_trip_gives_identical_output(tiny_pipe, tiny_model_dir):
    loaded = DiffPortrait3DPipeline.from_pretrained(tiny_model_dir)
    loaded.set_progress_bar_config(disable=True)
    assert torch.equal(run(tiny_pipe).images, run(loaded).images)


def test_groups_are_denoised_independently(tiny_pipe):
    """Views of different groups only share the reference: a 2+2 split equals two separate runs. With
    view modules that are not identities, so that views of ONE group do see each other (checked)."""
    import copy

    pipe = copy.deepcopy(tiny_pipe)  # a deep copy keeps its processors and view-module hooks
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for p in pipe.view_modules.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    conds = images(4, 1)
    kw = dict(num_inference_steps=2, output_type="latent", eta=0.0)
    x_t = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    both = pipe(images(1, 100), conds, group_size=2, views="groups", latents=x_t, **kw).images
    first = pipe(images(1, 100), conds[:2], group_size=2, latents=x_t[:2], **kw).images
    assert (both[:2] - first).abs().max().item() <= 1e-5
    one_group = pipe(images(1, 100), conds, group_size=4, latents=x_t, **kw).images
    assert (one_group[:2] - first).abs().max().item() > 1e-3  # the modules connect the views of a group


def test_proxy_images_set_the_3d_aware_start(tiny_pipe):
    """The initial latent is q_sample(E(proxy), 999): changing the proxy changes the output."""
    a = run(tiny_pipe, proxy_images=images(3, 7)).latents
    b = run(tiny_pipe, proxy_images=images(3, 8)).latents
    c = run(tiny_pipe).latents
    assert (a - b).abs().max().item() > 1e-3 and (a - c).abs().max().item() > 1e-3


def test_the_3d_aware_start_is_the_forward_process_of_the_proxy_to_999(tiny_pipe):
    """x_T = sqrt(a_999) E(proxy) + sqrt(1 - a_999) noise, the noise being the generator's first draw."""
    from diffportrait3d.media import image_to_tensor
    from diffportrait3d.pipeline.schedule import q_sample

    seen = []
    proxies = images(3, 7)
    run(tiny_pipe, proxy_images=proxies, callback=lambda info: seen.append(info["x"].clone()) if info["k"] == 0 else None)
    noise = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        z = tiny_pipe.encode(torch.stack([image_to_tensor(p, 64) for p in proxies]))
    want = q_sample(z, noise, tiny_pipe.alphas_cumprod, 999)
    assert (seen[0] - want).abs().max().item() < 1e-5
    assert (seen[0] - noise).abs().max().item() > 1e-2  # the proxy is really in it


def test_recorded_noise_replays_a_run(tiny_pipe):
    steps, n = 3, 2
    x_t = torch.randn(n, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    noise = torch.randn(steps, n, 4, 8, 8, generator=torch.Generator().manual_seed(6))
    kw = dict(latents=x_t, step_noise=noise, num_inference_steps=steps, output_type="latent")
    a = tiny_pipe(images(1, 100), images(n, 1), generator=torch.Generator().manual_seed(0), **kw).images
    b = tiny_pipe(images(1, 100), images(n, 1), generator=torch.Generator().manual_seed(99), **kw).images
    assert torch.equal(a, b)


@pytest.mark.parametrize("kw, match", [
    (dict(condition_images=[]), "no images"),
    (dict(group_size=33), "1..32 views"),
    (dict(proxy_images=images(2)), "one proxy per view"),
    (dict(latents=torch.zeros(1, 4, 8, 8)), "do not fit"),
    (dict(output_type="np"), "output_type"),
    (dict(mode="fastest"), "--mode"),
    (dict(num_inference_steps=0), "--steps"),
])
def test_bad_inputs_fail_with_one_line(tiny_pipe, kw, match):
    args = dict(reference_images=images(1), condition_images=images(3), num_inference_steps=2)
    args.update(kw)
    with pytest.raises(UserError, match=match) as e:
        tiny_pipe(**args)
    assert "\n" not in str(e.value)


def test_image_modes_are_converted(tmp_path):
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent -> white background
    gray16 = Image.fromarray((np.ones((10, 10)) * 65535).astype(np.uint16))
    gray = Image.new("L", (10, 10), 0)
    assert torch.allclose(image_to_tensor(rgba), torch.ones(3, 10, 10))
    assert torch.allclose(image_to_tensor(gray16), torch.ones(3, 10, 10))
    assert torch.allclose(image_to_tensor(gray), -torch.ones(3, 10, 10))
    gray16.save(tmp_path / "g16.png")
    assert image_to_tensor(tmp_path / "g16.png", 4).shape == (3, 4, 4)
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(UserError, match="not a readable image"):
        image_to_tensor(tmp_path / "bad.png")


def test_init_from_stable_diffusion_folder(tmp_path):
    """`dp3d init --base` path: copies of the backbone, identity view modules, empty-prompt embedding."""
    from transformers import CLIPTextModel, CLIPTokenizer

    from diffportrait3d.pipeline.build import empty_prompt_embedding, sd15_components

    base = make_tiny_sd(tmp_path / "sd")
    comps = sd15_components(str(base))
    unet, ref, cn = comps["unet"], comps["reference_unet"], comps["controlnet"]
    for k, v in ref.state_dict().items():
        assert torch.equal(v, unet.state_dict()[k])
    assert torch.equal(cn.conv_in.weight, unet.conv_in.weight)
    assert all(torch.equal(cn.controlnet_down_blocks[i].weight, torch.zeros_like(cn.controlnet_down_blocks[i].weight))
               for i in range(len(cn.controlnet_down_blocks)))
    assert comps["view_modules"].non_identity_modules() == []
    want = empty_prompt_embedding(CLIPTextModel.from_pretrained(base / "text_encoder"), CLIPTokenizer.from_pretrained(base / "tokenizer"))
    assert torch.equal(comps["prompt_embedding"].embeds, want)
    with pytest.raises(UserError, match="cannot load a Stable Diffusion base"):
        sd15_components(str(tmp_path / "missing"))


def test_the_scheduler_component_drives_the_loop(tiny_model_dir):
    """Swapping pipe.scheduler changes the output; putting the release's DDIM back restores it."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    pipe = DiffPortrait3DPipeline.from_pretrained(tiny_model_dir)
    pipe.set_progress_bar_config(disable=True)
    kw = dict(n=2, eta=0.0, output_type="latent")
    ddim = run(pipe, **kw).images
    release_config = pipe.scheduler.config
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(release_config)
    assert (run(pipe, **kw).images - ddim).abs().max().item() > 1e-3
    pipe.scheduler = DDIMScheduler.from_config(release_config, timestep_spacing="trailing")
    assert (run(pipe, **kw).images - ddim).abs().max().item() > 1e-3
    pipe.scheduler = DDIMScheduler.from_config(release_config)
    assert torch.equal(run(pipe, **kw).images, ddim)


@pytest.mark.parametrize("mode", ["fast", "dpm++2m-10", "unipc-10", "ddim-12", "ref-every-2"])
def test_fast_modes_are_deterministic_and_differ_from_exact(tiny_pipe, mode):
    kw = dict(n=2, output_type="latent", num_inference_steps=4)
    a, b = run(tiny_pipe, mode=mode, **kw).images, run(tiny_pipe, mode=mode, **kw).images
    assert torch.equal(a, b)
    # the tiny random reference UNet's tokens hardly depend on t, so reusing them moves little
    assert (a - run(tiny_pipe, **kw).images).abs().max().item() > (0 if mode == "ref-every-2" else 1e-4)
    assert (a - run(tiny_pipe, seed=1, mode=mode, **kw).images).abs().max().item() > 1e-3


def test_noise_mean_remove_is_the_release_run_with_mean_free_draws(tiny_pipe):
    """noise_mean="remove": the same generator draws, initial and per step, each view's spatial mean per
    channel subtracted; replaying exactly those through latents/step_noise gives the same run."""
    steps, n = 3, 3
    g = torch.Generator().manual_seed(0)
    draws = [torch.randn(n, 4, 8, 8, generator=g) for _ in range(steps + 1)]  # x_T, then one per DDIM step
    free = [d - d.mean(dim=(-2, -1), keepdim=True) for d in draws]
    removed = run(tiny_pipe, n=n, num_inference_steps=steps, output_type="latent", noise_mean="remove").images
    replay = run(tiny_pipe, n=n, num_inference_steps=steps, output_type="latent", latents=free[0],
                 step_noise=torch.stack(free[1:])).images
    kept = run(tiny_pipe, n=n, num_inference_steps=steps, output_type="latent").images
    assert (removed - replay).abs().max().item() < 1e-5
    assert (removed - kept).abs().max().item() > 1e-3
    assert torch.equal(kept, run(tiny_pipe, n=n, num_inference_steps=steps, output_type="latent", noise_mean="keep").images)
    with pytest.raises(UserError, match="noise_mean"):
        run(tiny_pipe, noise_mean="zero")


def test_a_model_folder_names_its_noise_mean_default(tiny_pipe, tmp_path):
    """model_index.json's noise_mean is the folder's default (the shipped mini says reference); an argument
    overrides it; a folder without it keeps the release's noise."""
    assert tiny_pipe.config.noise_mean == "keep"
    tiny_pipe.register_to_config(noise_mean="remove")
    try:
        tiny_pipe.save_pretrained(tmp_path / "m")
    finally:
        tiny_pipe.register_to_config(noise_mean="keep")
    loaded = DiffPortrait3DPipeline.from_pretrained(tmp_path / "m")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.noise_mean == "remove"
    default = run(loaded, num_inference_steps=2, output_type="latent").images
    assert torch.equal(default, run(loaded, num_inference_steps=2, output_type="latent", noise_mean="remove").images)
    assert not torch.equal(default, run(loaded, num_inference_steps=2, output_type="latent", noise_mean="keep").images)
    index = tmp_path / "m" / "model_index.json"  # a folder written before the field existed
    index.write_text(json.dumps({k: v for k, v in json.loads(index.read_text()).items() if k != "noise_mean"}))
    assert DiffPortrait3DPipeline.from_pretrained(tmp_path / "m").config.noise_mean == "keep"
