"""The dataset each stage trains on, over an EG3D-layout folder (data/eg3d_dataset.py)."""

from torch.utils.data import Dataset

from ..data.eg3d_dataset import PairDataset, ViewGroupDataset


class Mapped(Dataset):
    """`inner` with `fn` applied to each item; keeps set_epoch for the resumable batch order."""

    def __init__(self, inner, fn):
        self.inner, self.fn = inner, fn

    def __len__(self):
        return len(self.inner)

    def set_epoch(self, epoch):
        self.inner.set_epoch(epoch)

    @property
    def index(self):
        return self.inner.index

    def __getitem__(self, i):
        return self.fn(self.inner[i])


def tensors_only(item: dict) -> dict:
    # subject/frame strings would not collate into tensors; the stages do not need them
    return {k: v for k, v in item.items() if k not in ("subject", "frame")}


def build_dataset(cfg, stage) -> Dataset:
    res = cfg.resolution or stage.resolution
    kind = stage.batch_kind
    if kind == "images":  # vae, base: every view once per epoch
        return Mapped(PairDataset(cfg.data, res=res, condition_source="none", seed=cfg.seed), lambda it: {"image": it["target"], "view": it["target_view"]})
    if kind == "camera_pairs":  # noise3d
        return Mapped(PairDataset(cfg.data, res=res, condition_source="none", seed=cfg.seed), tensors_only)
    if kind == "groups":  # consistency
        return Mapped(ViewGroupDataset(cfg.data, views=cfg.views, res=res, condition_source=cfg.condition_source, seed=cfg.seed), tensors_only)
    # stage 1 has no view control: rendering condition images for it would be wasted time
    source = "none" if stage.name == "reference" else cfg.condition_source
    return Mapped(PairDataset(cfg.data, res=res, condition_source=source, seed=cfg.seed), tensors_only)
