"""VAE posteriors of every dataset view, encoded once before a stage trains.

The VAE is frozen after its own stage, so encoding the same images at every step of every later
stage is wasted work (at the miniature size it was a third of a step). The cache holds each view's
posterior mean and std; `sample` draws from them exactly as `latent_dist.sample(generator)` would,
so a cached run is the uncached run up to the encoder's batch-size rounding (tests check 1e-5).

The file is keyed by the VAE's weights, the view list and the resolution: a different VAE or
dataset rebuilds it instead of silently reusing stale latents. Its name carries that key, so one
folder (`latent_cache`) can serve every stage of a recipe: base, view and reference share one VAE
and one dataset, and encode them once instead of three times (~100 s each on one miniature core).
"""

import hashlib
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..atomic import atomic_path
from ..media import image_to_tensor
from ..models.latent_scale import scale_latents

logger = logging.getLogger(__name__)


def fingerprint(vae, index, res: int) -> str:
    h = hashlib.sha256(f"{res}\n".encode())
    for name, t in sorted(vae.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().numpy().tobytes())
    for v in index.views:
        h.update(v.rel.encode())
    return h.hexdigest()


class LatentCache:
    def __init__(self, mean: torch.Tensor, std: torch.Tensor, vae):
        self.mean, self.std, self.vae = mean, std, vae  # (N, C, h, w) each; the VAE's config scales them

    def sample(self, views: torch.Tensor, generator) -> torch.Tensor:
        """Scaled latents of dataset views `views` (any shape of ints) -> (*views.shape, C, h, w).
        `generator`: one, or a list with one per view, drawn as `latent_dist.sample` draws them."""
        from diffusers.utils.torch_utils import randn_tensor

        i = views.flatten().cpu()  # the cache stays on the CPU; batches may be on the GPU
        mean, std = self.mean[i], self.std[i]
        z = mean + std * randn_tensor(mean.shape, generator=generator)
        return scale_latents(self.vae, z).reshape(*views.shape, *mean.shape[1:])

    @classmethod
    @torch.no_grad()
    def load_or_build(cls, vae, index, res: int, path: Path, batch_size: int = 64, progress: bool = True,
                      key: str | None = None) -> "LatentCache":
        from PIL import Image

        key = key or fingerprint(vae, index, res)
        if path.is_file():
            from safetensors import safe_open

            with safe_open(path, "pt") as f:
                if (f.metadata() or {}).get("fingerprint") == key:
                    t = load_file(path)
                    logger.info("latent cache: %d views from %s", len(t["mean"]), path)
                    return cls(t["mean"], t["std"], vae)
            logger.warning("latent cache %s was made with another VAE or dataset: rebuilding it", path)
        device, dtype = vae.device, vae.dtype
        means, stds = [], []
        views = index.views
        for s in tqdm(range(0, len(views), batch_size), desc="encoding latents", disable=not progress):
            imgs = []
            for v in views[s : s + batch_size]:
                try:
                    with Image.open(v.path) as img:
                        imgs.append(image_to_tensor(img, res))
                except (OSError, ValueError, SyntaxError):  # the datasets skip unreadable views: never sampled
                    imgs.append(torch.zeros(3, res, res))
            dist = vae.encode(torch.stack(imgs).to(device, dtype)).latent_dist
            means.append(dist.mean.float().cpu().contiguous())
            stds.append(dist.std.float().cpu().contiguous())
        mean, std = torch.cat(means).contiguous(), torch.cat(stds).contiguous()
        with atomic_path(path) as tmp:
            save_file({"mean": mean, "std": std}, tmp, metadata={"fingerprint": key})
        return cls(mean, std, vae)


def attach_latent_cache(cfg, stage, dataset, progress: bool = True) -> None:
    """Give a latent-space stage (one with a frozen `latent_vae`) the cache of its dataset's views.
    Under several processes the loop calls this main process first: it builds the file, the others
    wait and then load it (the fingerprint matches)."""
    vae = getattr(stage, "latent_vae", None)
    if not cfg.cache_latents or vae is None or not hasattr(dataset, "index"):
        return
    res = cfg.resolution or stage.resolution
    key = fingerprint(vae, dataset.index, res)
    folder = Path(cfg.latent_cache) if cfg.latent_cache else Path(cfg.output) / "cache"
    stage.latents = LatentCache.load_or_build(vae, dataset.index, res, folder / f"latents-{key[:16]}.safetensors",
                                              progress=progress, key=key)
