"""The released checkpoint end to end: `dp3d convert-official` as a user runs it, the folder loaded with
`DiffPortrait3DPipeline.from_pretrained`, and the pipeline's own `__call__` (its saved scheduler, grouping,
guidance and DDIM loop) against the authors' recorded 4- and 50-step runs (tests/reference_vectors).

The authors' runs bypass the VAE and the text encoder (README of the vectors): the recorded reference
latent and text embedding go in where those would, x_T and the per-step noise through `latents` and
`step_noise`. Measured agreement (max |ours - theirs| / std of the final latent): 4 steps 1.4e-5,
50 steps 2.4e-5."""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from diffportrait3d.cli.main import main
from diffportrait3d.models.prompt_embedding import PromptEmbedding
from diffportrait3d.pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline

from sd_folder import make_tiny_sd
from test_reference_vectors import DIR

TOL = 1e-4  # of the final latent's std


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    cfg = root / "cfg.json"
    cfg.write_text((DIR / "tiny_config.json").read_text())
    out = root / "converted"
    assert main(["convert-official", str(DIR / "tiny_weights.safetensors"), "-o", str(out), "--base", str(make_tiny_sd(root / "sd")),
                 "--original-config", str(cfg)]) == 0
    return out


@torch.no_grad()
@pytest.mark.parametrize("run", ["ddim4_eta0p5", "ddim50_eta0p5"])
def test_converted_folder_reproduces_the_release_runs(converted, run):
    vec = load_file(DIR / "inputs.safetensors")
    rec = load_file(DIR / f"sampling_{run}.safetensors")
    steps = rec["t"].shape[0]
    pipe = DiffPortrait3DPipeline.from_pretrained(converted)
    pipe.set_progress_bar_config(disable=True)
    pipe.prompt_embedding = PromptEmbedding.from_tensor(vec["context_single"])  # the text encoder's place
    pipe.encode = lambda images, generator=None, sample_posterior=False: vec["ref_latent_single"]  # the VAE's place
    hint = vec["hint"]
    out = pipe(torch.zeros(1, 3, *hint.shape[-2:]), hint, num_inference_steps=steps, guidance_scale=3.0, eta=0.5,
               proxy_images=None, latents=rec["x_T"], step_noise=vec[f"{run}_noise"], views="groups", output_type="latent")
    rel = (out.latents - rec["final"]).abs().max().item() / rec["final"].std().item()
    print(f"{run}: {rel:.1e} of the std")
    assert rel < TOL, rel


def _render(model, reference, out, *extra):
    assert main(["render", str(reference), "--model", str(model), "--yaw=-30:30", "--views", "2", "--steps", "2", "-o", str(out),
                 *extra]) == 0
    return [np.asarray(Image.open(out / f"view_{i:03d}.png")) for i in range(2)]


def test_a_converted_folder_renders_with_the_release_defaults(converted, tmp_path):
    """The release folder names no per-model defaults, so `dp3d render` keeps the release's noise (no colour pull) and
    draws the renderer's default carrier (0); a folder that names them (as the miniature model's does) renders with
    them, and --noise-mean / --condition-seed still override them."""
    import json
    import shutil

    from diffportrait3d.conditions.sources import RENDERER_CONDITION_SEED, model_condition_seed

    index = json.loads((converted / "model_index.json").read_text())
    assert index.get("condition_seed") is None and index.get("colour_pull") is None and index["noise_mean"] == "keep"
    pipe = DiffPortrait3DPipeline.from_pretrained(converted)
    assert pipe.config.noise_mean == "keep" and model_condition_seed(pipe) == RENDERER_CONDITION_SEED == 0
    size = pipe.image_size
    reference = tmp_path / "ref.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(reference)
    release = _render(converted, reference, tmp_path / "default")
    explicit = _render(converted, reference, tmp_path / "explicit", "--noise-mean", "keep", "--condition-seed", "0")
    assert all(np.array_equal(a, b) for a, b in zip(release, explicit))
    # the same weights with the miniature model's kind of defaults written into the folder
    tuned = tmp_path / "tuned"
    shutil.copytree(converted, tuned)
    index.update(condition_seed=7, noise_mean="colour_pull", colour_pull={"pull": 0.5, "full_degrees": 30.0, "none_degrees": 60.0})
    (tuned / "model_index.json").write_text(json.dumps(index))
    own = _render(tuned, reference, tmp_path / "own")
    asked = _render(converted, reference, tmp_path / "asked", "--noise-mean", "colour_pull", "--condition-seed", "7")
    assert all(np.array_equal(a, b) for a, b in zip(own, asked))
    assert np.mean([np.abs(a.astype(float) - b).mean() for a, b in zip(own, release)]) > 1.0
    overridden = _render(tuned, reference, tmp_path / "overridden", "--noise-mean", "keep", "--condition-seed", "0")
    assert all(np.array_equal(a, b) for a, b in zip(overridden, release))
