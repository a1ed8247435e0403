"""Download the registered weight files into a folder: atomically, sha256-checked, with progress."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from ..atomic import atomic_path
from ..errors import UserError
from ..preflight import check_output_folder
from .weights import REGISTRY, sha256_file, verify

logger = logging.getLogger(__name__)


def fetch(weights_dir: str | Path, keys=None, force: bool = False, progress: bool = True, timeout: float = 60) -> list[Path]:
    """Download `keys` (default: all registered files) into `weights_dir`; skip files already there
    and valid. Each file is written to a temporary name and renamed only after its sha256 matched."""
    weights_dir = Path(weights_dir)
    keys = list(REGISTRY) if keys is None else list(keys)
    unknown = [k for k in keys if k not in REGISTRY]
    if unknown:
        raise UserError(f"unknown weight file(s) {unknown}; known: {', '.join(REGISTRY)}")
    check_output_folder(weights_dir, "DIR")
    done = []
    for key in keys:
        w = REGISTRY[key]
        path = weights_dir / w.filename
        if path.is_file() and not force:
            try:
                verify(path, key)
                logger.info("%s: present", w.filename)
                done.append(path)
                continue
            except UserError:
                logger.warning("%s: present but its sha256 does not match; downloading again", w.filename)
        with atomic_path(path) as tmp:
            _download(w.url, tmp, w.filename, progress, timeout)
            verify(tmp, key)
        done.append(path)
    return done


def _download(url: str, dest: Path, label: str, progress: bool, timeout: float) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(dest, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=not progress) as bar:
                while block := r.read(1 << 20):
                    f.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError) as e:
        raise UserError(f"cannot download {label} from {url} ({getattr(e, 'reason', e)})") from None


def describe(weights_dir: str | Path | None = None) -> str:
    """A table of the registered files (and, given a folder, whether each is present)."""
    lines = []
    for w in REGISTRY.values():
        state = ""
        if weights_dir is not None:
            p = Path(weights_dir) / w.filename
            state = "present " if p.is_file() else "missing "
        sha = f"sha256 {w.sha256[:16]}" if w.sha256 else "sha256 not recorded"
        lines.append(f"{state}{w.filename:40s} {w.used_by:32s} {sha}  {w.url}")
    return "\n".join(lines)


__all__ = ["fetch", "describe", "sha256_file"]
