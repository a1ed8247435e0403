"""Deterministic, resumable batch order: epoch e visits a permutation seeded by (seed, e); resuming
at micro-batch k skips straight to it. Any randomness inside the dataset is seeded per batch."""

import random

import numpy as np
import torch
from torch.utils.data import default_collate


def batches(dataset, batch_size: int, seed: int, start: int = 0):
    """Yield (micro-batch index, collated batch) forever, from micro-batch `start`."""
    n = len(dataset)
    if n == 0:
        raise ValueError("the dataset is empty")
    per_epoch = max(n // batch_size, 1)
    k = start
    while True:
        epoch, pos = divmod(k, per_epoch)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
        order = (order * ((batch_size // n) + 1))[: per_epoch * batch_size]  # tiny sets: wrap around
        for b in range(pos, per_epoch):
            seed_all(seed * 1_000_003 + k)
            yield k, default_collate([dataset[i] for i in order[b * batch_size : (b + 1) * batch_size]])
            k += 1


def seed_all(s: int):
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)
