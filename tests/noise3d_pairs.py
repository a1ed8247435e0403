"""Multi-view images and pairs for the 3D-aware noise model, in memory: a test helper (tests/test_noise3d.py).

Training reads a `dp3d synth` / EG3D folder through `data.eg3d_dataset.PairDataset`, whose items
have the same keys as the batches here (see training/losses.py: noise3d_loss).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from diffportrait3d.cameras import camera_label
from diffportrait3d.head import render_head


def render_views(identities: Sequence[int], cameras: Sequence[tuple[float, float]], res: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Render each identity from each (yaw, pitch) camera (degrees).

    Returns images (N, V, 3, res, res) in [-1, 1] and float32 labels (N, V, 25).
    """
    labels = np.stack([camera_label(yaw, pitch) for yaw, pitch in cameras])
    imgs = [[torch.from_numpy(render_head(i, lab, res).image) for lab in labels] for i in identities]
    images = torch.stack([torch.stack(v) for v in imgs]).permute(0, 1, 4, 2, 3).float() / 127.5 - 1  # (N, V, H, W, 3) -> (N, V, 3, H, W)
    return images, torch.tensor(labels, dtype=torch.float32).expand(len(identities), -1, -1).contiguous()


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
