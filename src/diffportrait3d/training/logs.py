"""Training logs: loss per step to CSV (and TensorBoard when installed), a loss-curve PNG, sample grids."""

import csv
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


class TrainLog:
    def __init__(self, folder: Path, resume_step: int = 0):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.csv_path = folder / "loss.csv"
        rows = self.read() if resume_step else []
        rows = [r for r in rows if int(r["step"]) <= resume_step]  # drop steps past the checkpoint
        self.fields = ["step", "loss", "lr", "steps_per_s"]
        with open(self.csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
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

    def read(self) -> list[dict]:
        if not self.csv_path.is_file():
            return []
        with open(self.csv_path) as f:
            return list(csv.DictReader(f))

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
