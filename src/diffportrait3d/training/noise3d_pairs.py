"""Multi-view pairs for the 3D-aware noise model, rendered in memory from the procedural head.

For small runs (the test fixture, benchmarks): a few identities x a few random orbit cameras,
kept as tensors. Full training reads a `dp3d synth` / EG3D dataset folder instead; the batch
format is the same (see training/noise3d.py).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from ..conditions.cameras import camera_label
from ..conditions.head import render_head


def render_views(identities: Sequence[int], cameras: Sequence[tuple[float, float]], res: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Render each identity from each (yaw, pitch) camera (degrees).

    Returns images (N, V, 3, res, res) in [-1, 1] and float32 labels (N, V, 25).
    """
    labels = np.stack([camera_label(yaw, pitch) for yaw, pitch in cameras])
    imgs = [[torch.from_numpy(render_head(i, lab, res).image) for lab in labels] for i in identities]
    images = torch.stack([torch.stack(v) for v in imgs]).permute(0, 1, 4, 2, 3).float() / 127.5 - 1  # (N, V, H, W, 3) -> (N, V, 3, H, W)
    return images, torch.tensor(labels, dtype=torch.float32).expand(len(identities), -1, -1).contiguous()


def render_random_views(identities: Sequence[int], views: int, res: int = 64, yaw: float = 45.0, pitch: float = 15.0,
                        seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Like `render_views`, with `views` cameras per identity drawn uniformly in +-yaw, +-pitch (its own draw each)."""
    rng = np.random.default_rng(seed)
    out = [render_views([i], list(zip(rng.uniform(-yaw, yaw, views), rng.uniform(-pitch, pitch, views))), res)
           for i in identities]
    return torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out])


def random_pairs(images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int = 0) -> Iterator[dict]:
    """Endless batches of (reference, target) pairs: same identity, two different views, seeded."""
    n, v = labels.shape[:2]
    if v < 2:
        raise ValueError(f"need at least 2 views per identity for pairs, got {v}")
    g = torch.Generator().manual_seed(seed)
    while True:
        s = torch.randint(n, (batch_size,), generator=g)
        a = torch.randint(v, (batch_size,), generator=g)
        b = (a + torch.randint(1, v, (batch_size,), generator=g)) % v  # any view but a
        yield {"reference": images[s, a], "reference_label": labels[s, a],
               "target": images[s, b], "target_label": labels[s, b]}
