"""A stage's validation loss for finished model folders, on a large fixed held-out batch (issue 36).

    python benchmarks/bench_val_loss.py --stage reference --heldout OUT/heldout --model A --model B
        [--options '{"same_view": 0.3, ...}'] [--size 192] [--threads 2] [--out bench_val_loss_out]

The training loop's validation (training/validation.py: fixed items, timesteps and noise; module on and off) on
--size items instead of the recipe's 16: at 16 items two checkpoints a few hundred steps apart differ by as much as
the chance of which timesteps the batch holds (the base stage's val-16 curve moved 0.0472 -> 0.0421 with a
learning-rate decay that changed nothing at 192 items). Give the stage's training options (--options, as in
scripts/train_miniature.sh): they decide what a sample is (e.g. `same_view`). The recipe's loss settings (Min-SNR 5,
floor 0.1, offset noise 0.1, carriers read from the folder) are used. Writes val_loss.md under --out.
"""

import argparse
import json
from pathlib import Path

import torch

from diffportrait3d.atomic import atomic_path
from diffportrait3d.cli.main import OneLineParser
from diffportrait3d.errors import UserError
from diffportrait3d.training.config import TrainConfig
from diffportrait3d.training.stages import stage_class
from diffportrait3d.training.validation import validate, validation_batch


def val_loss(stage_name: str, model: str, heldout: str, options: dict, size: int, chunk: int = 32) -> dict:
    """{"val_loss", "val_off" (switchable stages)}: means over `size` items, evaluated `chunk` at a time."""
    cfg = TrainConfig(stage=stage_name, data=heldout, model=model, val_data=heldout, val_size=size, snr_gamma=5,
                      snr_floor=0.1, noise_offset=0.1, condition_source="folder", options=options).validate()
    stage = stage_class(stage_name).build(cfg)
    batch = validation_batch(stage, cfg)
    n = len(batch["seed"])
    total: dict = {}
    for k in range(0, n, chunk):
        part = validate(stage, {key: v[k:k + chunk] for key, v in batch.items()})
        for key, v in part.items():
            total[key] = total.get(key, 0.0) + v * min(chunk, n - k) / n
    return total


def main():
    ap = OneLineParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", required=True, help="the stage whose loss to measure (base, view, reference, ...)")
    ap.add_argument("--heldout", required=True, type=Path, help="held-out dataset folder (e.g. the recipe's OUT/heldout)")
    ap.add_argument("--model", action="append", required=True, help="model folder (a stage's OUT/model); repeat to compare")
    ap.add_argument("--options", default="{}", help="the stage's training options, JSON")
    ap.add_argument("--size", type=int, default=192, help="validation items (timesteps spread evenly over 0..999)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench_val_loss_out"))
    a = ap.parse_args()
    try:
        options = json.loads(a.options)
    except json.JSONDecodeError as e:
        ap.error(f"--options must be JSON, e.g. '{{\"same_view\": 0.3}}' ({e})")
    for folder in [a.heldout, *map(Path, a.model)]:
        if not folder.is_dir():
            ap.error(f"{folder} is not a folder")
    if a.size < 1 or a.threads < 1:
        ap.error(f"--size and --threads must be at least 1, got {a.size} and {a.threads}")
    torch.set_num_threads(a.threads)
    rows = ["| model | val_loss | val_off | off - on |", "|---|---|---|---|"]
    for model in a.model:
        try:
            r = val_loss(a.stage, model, str(a.heldout), options, a.size)
        except UserError as e:  # a bad stage, option or folder content
            ap.error(str(e))
        off = r.get("val_off")
        rows.append(f"| {model} | {r['val_loss']:.5f} | " + (f"{off:.5f} | {off - r['val_loss']:.5f} |" if off is not None else "· | · |"))
        print(rows[-1], flush=True)
    text = f"# {a.stage} validation loss, {a.size} items of {a.heldout}\n\n" + "\n".join(rows) + "\n"
    with atomic_path(a.out / "val_loss.md") as tmp:
        Path(tmp).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
