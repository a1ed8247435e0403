"""Dataset wrappers shared by the stages (each stage builds its own dataset, see stages/)."""

import numpy as np
from torch.utils.data import Dataset


class Mapped(Dataset):
    """`inner` with `fn` applied to each item; keeps set_epoch and the view index (latent cache)."""

    def __init__(self, inner, fn):
        self.inner, self.fn = inner, fn

    def __len__(self):
        return len(self.inner)

    def set_epoch(self, epoch):
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    @property
    def index(self):
        return self.inner.index

    def __getitem__(self, i):
        return self.fn(self.inner[i])


def tensors_only(item: dict) -> dict:
    # subject/frame strings would not collate into tensors; the stages do not need them
    return {k: v for k, v in item.items() if k not in ("subject", "frame")}


class SeededItems(Mapped):
    """Adds item["seed"], a function of (seed, epoch, index) only: the per-sample seed of its noise and
    timestep (stages/base.py: generators). Where a sample lands (batch, micro-batch, process, worker)
    cannot change what it draws, and each epoch draws anew."""

    def __init__(self, inner, seed: int):
        super().__init__(inner, None)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)
        super().set_epoch(epoch)

    def __getitem__(self, i):
        item = dict(self.inner[i])
        item["seed"] = int(np.random.SeedSequence([self.seed, self.epoch, int(i)]).generate_state(2, np.uint64)[0] >> 1)
        return item
