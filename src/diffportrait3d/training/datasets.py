"""The dataset each stage trains on, over an EG3D-layout folder (data/eg3d_dataset.py)."""

from torch.utils.data import Dataset

from ..data.eg3d_dataset import PairDataset, ViewGroupDataset


class ImageDataset(Dataset):
    """Single images (the vae and base stages): every view once per epoch."""

    def __init__(self, pairs: PairDataset):
        self.pairs = pairs

    def __len__(self):
        return len(self.pairs)

    def set_epoch(self, epoch):
        self.pairs.set_epoch(epoch)

    def __getitem__(self, i):
        return {"image": self.pairs[i]["target"]}


def _strip(item: dict) -> dict:
    # subject/frame strings would not collate into tensors; the stages do not need them
    return {k: v for k, v in item.items() if k not in ("subject", "frame")}


class _Tensors(Dataset):
    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    def set_epoch(self, epoch):
        self.inner.set_epoch(epoch)

    def __getitem__(self, i):
        return _strip(self.inner[i])


def build_dataset(cfg, stage) -> Dataset:
    res = cfg.resolution or stage.resolution
    kind = stage.batch_kind
    if kind == "images":
        return ImageDataset(PairDataset(cfg.data, res=res, condition_source="none", seed=cfg.seed))
    if kind == "camera_pairs":
        return _Tensors(PairDataset(cfg.data, res=res, condition_source="none", seed=cfg.seed))
    if kind == "groups":
        return _Tensors(ViewGroupDataset(cfg.data, views=cfg.views, res=res, condition_source=cfg.condition_source, seed=cfg.seed))
    return _Tensors(PairDataset(cfg.data, res=res, condition_source=cfg.condition_source, seed=cfg.seed))
