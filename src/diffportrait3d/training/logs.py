"""Training logs: loss per step to CSV (and TensorBoard when installed), validation losses
(training/validation.py) to val.csv, a loss-curve PNG with both, sample grids."""

import csv
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


class TrainLog:
    def __init__(self, folder: Path, resume_step: int = 0):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.csv_path, self.val_path = folder / "loss.csv", folder / "val.csv"
        self.fields, self.val_fields = ["step", "loss", "lr", "steps_per_s"], ["step", "val_loss", "val_off"]
        for path, fields in ((self.csv_path, self.fields), (self.val_path, self.val_fields)):
            rows = _read(path) if resume_step else []
            rows = [r for r in rows if int(r["step"]) <= resume_step]  # drop steps past the checkpoint
            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
                w.writeheader()
                w.writerows(rows)
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(folder / "tensorboard"), purge_step=resume_step or None)
        except ImportError:
            logger.info("tensorboard not installed: logging to loss.csv only")

    def write(self, step: int, values: dict):
        with open(self.csv_path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore").writerow({"step": step, **values})
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"train/{k}", v, step)

    def write_val(self, step: int, values: dict):
        with open(self.val_path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.val_fields, extrasaction="ignore").writerow({"step": step, **values})
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"val/{k}", v, step)

    def read(self) -> list[dict]:
        return _read(self.csv_path)

    def read_val(self) -> list[dict]:
        return _read(self.val_path)

    def plot(self, title: str) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        rows = self.read()
        steps = np.array([int(r["step"]) for r in rows])
        loss = np.array([float(r["loss"]) for r in rows])
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(steps, loss, alpha=0.35, label="loss")
        if len(loss) >= 10:
            k = max(len(loss) // 20, 5)
            ax.plot(steps[k - 1 :], np.convolve(loss, np.ones(k) / k, mode="valid"), label=f"mean of {k}")
        val = self.read_val()
        if val:
            vs = np.array([int(r["step"]) for r in val])
            ax.plot(vs, [float(r["val_loss"]) for r in val], "o-", ms=3, color="C2", label="validation (fixed t, noise)")
            if val[0].get("val_off"):
                ax.plot(vs, [float(r["val_off"]) for r in val], "s--", ms=3, color="C3", label="validation, module off")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()
        from ..atomic import atomic_path

        out = self.folder / "loss_curve.png"
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=120)
        plt.close(fig)
        return out

    def close(self):
        if self.tb is not None:
            self.tb.close()


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))
