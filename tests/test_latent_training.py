"""Training inputs made once (latent cache, pre-rendered conditions), the measured latent scale and
Min-SNR weighting: each equals what it replaces, or its analytic value."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from diffportrait3d.data.eg3d_dataset import PairDataset, ViewGroupDataset
from diffportrait3d.data.synth import SynthConfig, synth
from diffportrait3d.errors import UserError
from diffportrait3d.media import image_to_tensor
from diffportrait3d.models.latent_scale import scale_latents, unscale_latents
from diffportrait3d.pipeline.schedule import sd15_alphas_cumprod
from diffportrait3d.training.latent_cache import LatentCache
from diffportrait3d.training.losses import weighted_mse
from diffportrait3d.training.noising import min_snr_weights
from diffportrait3d.training.stages.base import generators
from diffportrait3d.training.stages.base_models import VAEStage, random_crops
from diffportrait3d.training.stages.diffportrait3d import ViewStage


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_cond")
    synth(out, SynthConfig(subjects=2, frames=1, views=3, res=64, conditions=2), progress=False)
    return out


def test_prerendered_conditions_are_read_for_their_view(data):
    ds = PairDataset(data, res=64, condition_source="folder")
    item = ds[1]
    rel = ds.index.views[item["target_view"]].rel[:-4]
    files = [image_to_tensor(str(data / "conditions" / f"{rel}_{k}.png")) for k in range(2)]
    assert min((item["condition"] - f).abs().max().item() for f in files) == 0.0
    assert (item["condition"] - item["target"]).abs().mean() > 0.05  # another identity, not the target
    assert ds.rig_fallbacks == 0
    group = ViewGroupDataset(data, views=3, res=64, condition_source="folder")[0]
    assert group["conditions"].shape == (3, 3, 64, 64) and group["target_views"].tolist() != [0, 0, 0]


def test_missing_prerendered_condition_falls_back_to_rendering(data, tmp_path):
    import shutil

    shutil.copytree(data, tmp_path / "d", ignore=shutil.ignore_patterns("conditions"))
    ds = PairDataset(tmp_path / "d", res=64, condition_source="folder")
    assert ds[0]["condition"].shape == (3, 64, 64) and ds.rig_fallbacks == 1


def test_cached_latents_give_the_uncached_loss(tiny_pipe, data, tmp_path):
    pipe = copy.deepcopy(tiny_pipe)
    stage = ViewStage(pipe)
    ds = PairDataset(data, res=64, condition_source="folder")
    batch = torch.utils.data.default_collate([{**ds[i], "seed": 3 + i} for i in range(3)])
    plain, _ = stage(batch)
    stage.latents = LatentCache.load_or_build(pipe.vae, ds.index, 64, tmp_path / "latents.safetensors", progress=False)
    cached, _ = stage(batch)
    assert abs(cached.item() - plain.item()) < 1e-5 * plain.item()
    # a second build with the same VAE and views reads the file; another VAE rebuilds it
    again = LatentCache.load_or_build(pipe.vae, ds.index, 64, tmp_path / "latents.safetensors", progress=False)
    assert torch.equal(again.mean, stage.latents.mean)
    other = copy.deepcopy(pipe.vae)
    with torch.no_grad():
        other.encoder.conv_in.weight.mul_(1.5)
    rebuilt = LatentCache.load_or_build(other, ds.index, 64, tmp_path / "latents.safetensors", progress=False)
    assert not torch.allclose(rebuilt.mean, stage.latents.mean)


@pytest.mark.parametrize("per_channel,crop,trained", [(True, 0, True), (False, 0, True), (True, 32, True), (True, 0, False)])
def test_vae_stage_stores_the_latent_scale_measured_on_its_dataset(tiny_pipe, data, tmp_path, per_channel, crop, trained):
    """Measured on the dataset's whole images: also when it trains on crops (the diffusion stages encode whole
    images), and when a run resumed at its last checkpoint saw no batch (before, it then exported the preset's
    placeholder and every later stage trained on mis-scaled latents); so the same on any process count."""
    from diffusers import AutoencoderKL

    from diffportrait3d.training.config import TrainConfig

    stage = VAEStage(copy.deepcopy(tiny_pipe.vae), per_channel_latents=per_channel, crop=crop)
    ds = stage.dataset(TrainConfig(stage="vae", data=str(data), output=str(tmp_path)))
    images = torch.stack([ds[i]["image"] for i in range(len(ds))])
    if trained:
        stage({"image": images[:4], "seed": torch.arange(4)})
    stage.export(tmp_path)
    vae = AutoencoderKL.from_pretrained(tmp_path / "vae")
    with torch.no_grad():
        raw = vae.encode(images).latent_dist.mean
    z = scale_latents(vae, raw)
    if per_channel:  # every channel zero-mean, unit-variance in the diffusion space
        per = z.transpose(0, 1).flatten(1)
        assert per.mean(1).abs().max().item() < 1e-4
        assert (per.std(1) - 1).abs().max().item() < 1e-4
        assert raw.transpose(0, 1).flatten(1).std(1).max() / raw.transpose(0, 1).flatten(1).std(1).min() > 1.05
    else:
        assert vae.config.latents_mean is None and vae.config.scaling_factor != tiny_pipe.vae.config.scaling_factor
        assert z.std().item() == pytest.approx(1.0, abs=1e-4)
    assert torch.allclose(unscale_latents(vae, z), raw, atol=1e-5)


def test_vae_crops_are_latent_grid_windows_drawn_per_sample(tiny_pipe):
    """A crop is a window of its own image with its corner on the latent grid, drawn from the sample's seed alone
    (the same crop in any batch or process); over many samples every corner occurs. Bad sizes: one-line error."""
    x = torch.randn(200, 3, 64, 64)
    crops = random_crops(x, 32, 8, generators({"seed": torch.arange(200)}))
    corners = set()
    for img, c in zip(x, crops):
        hits = [(i, j) for i in range(0, 33, 8) for j in range(0, 33, 8) if torch.equal(img[:, i:i + 32, j:j + 32], c)]
        assert len(hits) == 1
        corners |= set(hits)
    assert len(corners) == 25  # (5 x 5 corners; 200 draws miss one with probability < 0.01)
    alone = random_crops(x[7:8], 32, 8, generators({"seed": torch.tensor([7])}))
    assert torch.equal(alone[0], crops[7])
    for bad in (30, 72, 32.0):
        with pytest.raises(UserError, match="crop must be a multiple of 8"):
            VAEStage(copy.deepcopy(tiny_pipe.vae), crop=bad)


def test_min_snr_weights_and_weighted_mse():
    a = sd15_alphas_cumprod()
    t = torch.tensor([0, 100, 400, 999])
    snr = (a[t] / (1 - a[t])).double().numpy()
    w = min_snr_weights(a, t, 5.0).numpy()
    assert np.allclose(w, np.minimum(snr, 5.0) / snr, rtol=1e-6)
    assert w[0] < 0.01 and w[-1] == 1.0  # near-clean timesteps are down-weighted, noisy ones kept
    assert torch.equal(min_snr_weights(a, t, 0.0), torch.ones(4))
    x, y = torch.randn(4, 3, 5, 5), torch.randn(4, 3, 5, 5)
    assert weighted_mse(x, y, torch.ones(4)).item() == pytest.approx(F.mse_loss(x, y).item(), rel=1e-6)
    per = ((x - y) ** 2).flatten(1).mean(1)
    assert weighted_mse(x, y, torch.tensor(w)).item() == pytest.approx((per * torch.tensor(w)).mean().item(), rel=1e-6)


def test_fresh_weights_are_drawn_from_the_run_seed(tmp_path):
    """A stage that starts from a preset (no --model) draws its weights from the run's seed: the same seed gives
    the same VAE (a recipe rerun trains the same model; 1 process and 2 start alike), another seed another;
    the caller's global RNG is left as it was."""
    from diffportrait3d.training.config import TrainConfig
    from diffportrait3d.training.stages import build_stage

    def vae(seed):
        cfg = TrainConfig(stage="vae", data=str(tmp_path), output=str(tmp_path / "out"), seed=seed, options={"preset": "tiny"})
        return build_stage(cfg).vae.state_dict()

    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    a, b, c = vae(0), vae(0), vae(1)
    assert torch.equal(torch.rand(3), expected)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert sum(not torch.equal(a[k], c[k]) for k in a) > len(a) // 2  # every initialised tensor, not only a few
