"""The weight files the network metrics need: names, download URLs, sha256, and loading them.

All files live flat in one folder (`--weights DIR`); `dp3d fetch-weights DIR` downloads them.
A missing file makes its metric n/a (`MetricUnavailable`), never a number from random weights.

sha256: full digests are recorded where several independent records agree; for the pytorch-fid
Inception file we only know the 8-hex-digit prefix that its filename carries (torch.hub's
convention, the same check `torch.hub.load_state_dict_from_url(check_hash=True)` does); the
DISTS calibration file has no digest we could confirm, so it is not verified.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import MetricUnavailable, UserError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightFile:
    key: str
    filename: str  # the name expected inside the weights folder
    url: str
    sha256: str | None  # full hex digest, an 8+ digit prefix, or None (not verified)
    used_by: str
    license: str


_TV = "https://download.pytorch.org/models/"
_LPIPS = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/"

REGISTRY: dict[str, WeightFile] = {w.key: w for w in [
    WeightFile("alexnet", "alexnet-owt-7be5be79.pth", _TV + "alexnet-owt-7be5be79.pth",
               "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
               "LPIPS (alex backbone)", "BSD-3-Clause (torchvision)"),
    WeightFile("vgg16", "vgg16-397923af.pth", _TV + "vgg16-397923af.pth",
               "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
               "LPIPS (vgg backbone), DISTS", "BSD-3-Clause (torchvision)"),
    WeightFile("lpips_alex", "lpips_v0.1_alex.pth", _LPIPS + "alex.pth",
               "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
               "LPIPS linear heads (alex)", "BSD-2-Clause (richzhang/PerceptualSimilarity)"),
    WeightFile("lpips_vgg", "lpips_v0.1_vgg.pth", _LPIPS + "vgg.pth",
               "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
               "LPIPS linear heads (vgg)", "BSD-2-Clause (richzhang/PerceptualSimilarity)"),
    WeightFile("dists", "dists_weights.pt",
               "https://github.com/dingkeyan93/DISTS/raw/master/DISTS_pytorch/weights.pt", None,
               "DISTS alpha/beta", "MIT (dingkeyan93/DISTS)"),
    WeightFile("inception_fid", "pt_inception-2015-12-05-6726825d.pth",
               "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
               "6726825d", "FID (pytorch-fid Inception-v3)", "Apache-2.0 (mseitzer/pytorch-fid)"),
]}


def weight_path(weights_dir: str | Path | None, key: str, metric: str) -> Path:
    """The path of a registered file in `weights_dir`; MetricUnavailable if it is not there."""
    w = REGISTRY[key]
    if weights_dir is None:
        raise MetricUnavailable(metric, f"no weights folder given (needs {w.filename}; run `dp3d fetch-weights DIR`)")
    path = Path(weights_dir) / w.filename
    if not path.is_file():
        raise MetricUnavailable(metric, f"weight file {w.filename} not found in {weights_dir} (run `dp3d fetch-weights {weights_dir}`)")
    return path


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify(path: str | Path, key: str) -> None:
    """Raise UserError if the file's sha256 does not match the recorded digest (or prefix)."""
    expected = REGISTRY[key].sha256
    if expected is None:
        logger.info("no sha256 recorded for %s; not verified", Path(path).name)
        return
    got = sha256_file(path)
    if not got.startswith(expected.lower()):
        raise UserError(f"{path}: sha256 {got[:16]}... does not match the expected {expected[:16]}...; "
                        "the file is corrupt or not the right one: delete it and run `dp3d fetch-weights` again")


_VERIFIED: set[tuple[str, float]] = set()


def load_state_dict(weights_dir: str | Path | None, key: str, metric: str) -> dict[str, torch.Tensor]:
    """Load a registered file (sha256-checked once per file and mtime) as a tensor dict.

    `.safetensors` files are read with safetensors; `.pth`/`.pt` with torch.load(weights_only=True).
    """
    path = weight_path(weights_dir, key, metric)
    stamp = (str(path.resolve()), path.stat().st_mtime)
    if stamp not in _VERIFIED:
        verify(path, key)
        _VERIFIED.add(stamp)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors come in many types
        raise UserError(f"cannot read weight file {path} ({e.__class__.__name__}: {e}); delete it and fetch again") from None
    if not isinstance(sd, dict):
        raise UserError(f"weight file {path} holds a {type(sd).__name__}, expected a dict of tensors")
    return sd


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict(strict) with one clear error naming the missing and unexpected keys."""
    missing, unexpected = module.state_dict().keys() - state.keys(), state.keys() - module.state_dict().keys()
    if missing or unexpected:
        raise UserError(f"{source}: weight names do not fit {module.__class__.__name__}: "
                        f"missing {sorted(missing)[:5]}{'...' if len(missing) > 5 else ''}, "
                        f"unexpected {sorted(unexpected)[:5]}{'...' if len(unexpected) > 5 else ''}")
    bad = [k for k, v in module.state_dict().items() if v.shape != state[k].shape]
    if bad:
        k = bad[0]
        raise UserError(f"{source}: {k} has shape {tuple(state[k].shape)}, expected {tuple(module.state_dict()[k].shape)}")
    module.load_state_dict(state, strict=True)
